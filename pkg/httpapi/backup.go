package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
)

// backupWriteTime bounds the copy of a store file to the client (the
// server's WriteTimeout is meant for small answers).
const backupWriteTime = 10 * time.Minute

// errNoBackup answers a backup request on a store that has no file to copy.
var errNoBackup = errors.New("this store (PostgreSQL) has no file to back up; use pg_dump")

// backupStore is a store that can copy itself consistently while it serves
// (the bbolt store).
type backupStore interface {
	Backup(w io.Writer, begin func(size int64)) (int64, error)
}

// backup streams a consistent copy of the store file, taken in one read
// transaction while guests go on writing (`fastapi-dls backup FILE`).
func (a *API) backup(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	b, ok := a.db.(backupStore)
	if !ok {
		return errNoBackup
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTime))
	started := false
	n, err := b.Backup(w, func(size int64) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", "attachment; filename=dls-"+a.now().UTC().Format("20060102-150405")+".db")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err != nil && !started {
		return err
	}
	if err != nil {
		// The length was promised: a short copy is cut off, never taken
		// for a whole one.
		// (Mostly the client leaving; a store fault shows in health too.)
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "backup cut off", slog.Int64("bytes", n),
			slog.String("remote_addr", r.RemoteAddr), slog.String("err", err.Error()))
		panic(http.ErrAbortHandler)
	}
	a.log.Info("store backed up", slog.String("event", "admin.backup"), slog.Int64("bytes", n),
		slog.String("remote_addr", r.RemoteAddr))
	return nil
}
