package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The operator listings (/-/leases, /-/origins) stream their answer: the
// store is read one page at a time (each its own short read transaction)
// and every item is written as it is encoded, so memory does not grow with
// the store. Without paging parameters the answer is FastAPI-DLS's: one JSON
// array of everything. With ?limit=N (1 to maxListLimit) it is one page of
// at most N items after ?after=<ref>, in ref order, and a full page carries
// a Link header to the next one.

const (
	// listPage is how many items one store read fetches for an unpaged listing.
	listPage = 500
	// maxListLimit bounds ?limit=.
	maxListLimit = 1000
	// listBuffer is how much of an answer is held before it is streamed; an
	// answer that fits goes out whole with its Content-Length.
	listBuffer = 64 << 10
)

var errBadPaging = fmt.Errorf("%w: limit must be a whole number from 1 to %d, after a ref", protocol.ErrBadRequest, maxListLimit)

// paging is a listing's ?limit= and ?after=; limit 0 means everything.
type paging struct {
	limit int
	after string
}

func parsePaging(q url.Values) (paging, error) {
	p := paging{after: q.Get("after")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return paging{}, errBadPaging
		}
		p.limit = n
	}
	if len(p.after) > 256 {
		return paging{}, errBadPaging
	}
	return p, nil
}

// walk calls fetch for successive pages and emit for each item, following
// the paging: one page of p.limit, or every page until a short one. It sets
// the Link header of a full limited page before anything is written.
func walk[T any](w http.ResponseWriter, r *http.Request, p paging, fetch func(after string, n int) ([]T, error),
	ref func(T) string, emit func(T) error) error {
	size := listPage
	if p.limit > 0 {
		size = p.limit
	}
	after := p.after
	for {
		page, err := fetch(after, size)
		if err != nil {
			return err
		}
		if p.limit > 0 && len(page) == p.limit {
			q := r.URL.Query()
			q.Set("after", ref(page[len(page)-1]))
			w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
		}
		for _, item := range page {
			if err := emit(item); err != nil {
				return err
			}
		}
		if p.limit > 0 || len(page) < size {
			return nil
		}
		after = ref(page[len(page)-1])
	}
}

// arrayWriter writes a JSON array item by item: held in memory up to
// listBuffer (then sent whole with a Content-Length, as every other answer),
// streamed beyond.
type arrayWriter struct {
	w       http.ResponseWriter
	buf     bytes.Buffer
	n       int
	started bool // status and headers sent
}

func (aw *arrayWriter) add(v any) error {
	b, err := protocol.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode listing item: %w", err)
	}
	if aw.n == 0 {
		aw.buf.WriteByte('[')
	} else {
		aw.buf.WriteByte(',')
	}
	aw.n++
	aw.buf.Write(b)
	if aw.buf.Len() < listBuffer {
		return nil
	}
	if !aw.started {
		aw.w.Header().Set("Content-Type", "application/json")
		aw.w.WriteHeader(http.StatusOK)
		aw.started = true
	}
	_, err = aw.w.Write(aw.buf.Bytes())
	aw.buf.Reset()
	if err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

func (aw *arrayWriter) finish() {
	if aw.n == 0 {
		aw.buf.WriteByte('[')
	}
	aw.buf.WriteByte(']')
	if !aw.started {
		write(aw.w, http.StatusOK, "application/json", aw.buf.Bytes())
		return
	}
	aw.w.Write(aw.buf.Bytes())
}

// errClientGone marks a write to a client that left mid-answer.
var errClientGone = errors.New("client left during the answer")

// stream runs a listing into an arrayWriter. An error before the first byte
// is returned for the usual JSON error; after it, the answer can only be cut
// off (the client then sees a broken transfer, never a short list that looks
// whole), and the error is logged here.
func (a *API) stream(w http.ResponseWriter, r *http.Request, run func(aw *arrayWriter) error) error {
	aw := &arrayWriter{w: w}
	err := run(aw)
	if err == nil {
		aw.finish()
		return nil
	}
	if !aw.started {
		return err
	}
	level := slog.LevelError
	if errors.Is(err, errClientGone) {
		level = slog.LevelInfo
	}
	a.log.LogAttrs(r.Context(), level, "listing cut off", slog.String("path", r.URL.Path),
		slog.String("remote_addr", r.RemoteAddr), slog.String("err", err.Error()))
	panic(http.ErrAbortHandler)
}

func (a *API) origins(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	p, err := parsePaging(r.URL.Query())
	if err != nil {
		return err
	}
	withLeases := queryBool(r, "leases")
	return a.stream(w, r, func(aw *arrayWriter) error {
		return walk(w, r, p, a.db.OriginsAfter, func(o store.Origin) string { return o.Ref }, func(o store.Origin) error {
			v := viewOrigin(o)
			if withLeases {
				leases, err := a.db.Leases(o.Ref) // at most DLS_MAX_LEASES_PER_ORIGIN
				if err != nil {
					return err
				}
				v.Leases = make([]leaseView, 0, len(leases))
				for _, l := range leases {
					v.Leases = append(v.Leases, a.viewLease(l))
				}
			}
			return aw.add(v)
		})
	})
}

func (a *API) leases(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	p, err := parsePaging(r.URL.Query())
	if err != nil {
		return err
	}
	withOrigin := queryBool(r, "origin")
	return a.stream(w, r, func(aw *arrayWriter) error {
		// Origins seen lately, so that each is read once per stretch of the
		// listing rather than once per lease (bounded: cleared when full).
		seen := map[string]*originView{}
		return walk(w, r, p, a.db.LeasesAfter, func(l store.Lease) string { return l.Ref }, func(l store.Lease) error {
			v := a.viewLease(l)
			if withOrigin {
				ov, ok := seen[l.OriginRef]
				if !ok {
					o, err := a.db.Origin(l.OriginRef)
					switch {
					case err == nil:
						view := viewOrigin(o)
						ov = &view
					case !errors.Is(err, store.ErrNotFound):
						return err
					}
					if len(seen) >= maxListLimit {
						clear(seen)
					}
					seen[l.OriginRef] = ov
				}
				v.Origin = ov
			}
			return aw.add(v)
		})
	})
}
