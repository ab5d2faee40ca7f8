package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// handler is an endpoint: it writes its answer, or returns the error that
// [API.fail] turns into the JSON error answer.
type handler func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error

// adapt makes a routed handler: errors go to [API.fail], and every answer
// is measured under its route's pattern (metrics.go).
func (a *API) adapt(rt route, h handler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		sw, done := a.measure(w, rt.path, rt.step, r)
		defer done()
		if err := h(sw, r, ps); err != nil {
			a.fail(sw, r, err)
		}
	}
}

func (a *API) newRouter() *httprouter.Router {
	rt := httprouter.New()
	for _, route := range a.routes() {
		h := route.handle
		if route.admin {
			h = a.adminOnly(h)
		}
		rt.Handle(route.method, route.path, a.adapt(route, h))
	}
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, done := a.measure(w, unmatchedRoute, "", r)
		defer done()
		a.fail(sw, r, fmt.Errorf("%w: %s %s", errNotFound, clip(r.Method), clip(r.URL.Path)))
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, done := a.measure(w, unmatchedRoute, "", r)
		defer done()
		a.fail(sw, r, &methodNotAllowedError{method: clip(r.Method)})
	})
	rt.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // cors() set the headers
	})
	rt.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		if v == http.ErrAbortHandler {
			panic(v) // a streamed answer that broke off: net/http cuts the connection
		}
		a.logRequest(r, slog.LevelError, "handler panicked", slog.String("path", r.URL.Path), slog.Any("panic", v))
		a.fail(w, r, fmt.Errorf("internal error"))
	}
	return rt
}
