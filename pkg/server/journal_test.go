package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// TestLogHandlerText runs slog's conformance suite against the handler used outside journald.
func TestLogHandlerText(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var buf bytes.Buffer
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		buf.Reset()
		h := NewLogHandler(&buf, slog.LevelDebug)
		if _, ok := h.(*journalHandler); ok {
			t.Fatal("journald handler without JOURNAL_STREAM")
		}
		return h
	}, func(t *testing.T) map[string]any {
		return parseTextLine(t, buf.String())
	})
}

// parseTextLine parses one line of slog's text format into nested maps keyed by the dotted key parts.
func parseTextLine(t *testing.T, line string) map[string]any {
	t.Helper()
	line = strings.TrimSuffix(line, "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("want one line, got %q", line)
	}
	top := map[string]any{}
	for line != "" {
		key, rest, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("no = in %q", line)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("bad quoted value in %q: %v", rest, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		line = strings.TrimPrefix(rest, " ")
		m := top
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = val
	}
	return top
}

func TestJournalField(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, want string }{
		{"origin_ref", "ORIGIN_REF"},
		{"err", "ERR"},
		{"req.remote_addr", "REQ_REMOTE_ADDR"},
		{"Took", "TOOK"},
		{"x-forwarded-for", "X_FORWARDED_FOR"},
		{"_pid", "PID"},
		{"__", "ATTR"},
		{"", "ATTR"},
		{"2fa", "ATTR_2FA"},
		{"message", "ATTR_MESSAGE"},
		{"priority", "ATTR_PRIORITY"},
		{"event", "EVENT"},
		{"msg", "ATTR_MSG"},
		{"code_line", "ATTR_CODE_LINE"},
		{"grüße", "GR__E"},
		{strings.Repeat("a", 70), strings.Repeat("A", 64)},
		{strings.Repeat("a", 63) + "_b", strings.Repeat("A", 63)},
	}
	for _, tt := range tests {
		if got := journalField(tt.key); got != tt.want {
			t.Errorf("journalField(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// sent is one captured journal.Send call.
type sent struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

func TestJournalHandler(t *testing.T) {
	t.Parallel()
	type logFn func(l *slog.Logger)
	tests := []struct {
		name     string
		level    slog.Leveler
		log      logFn
		want     []sent // vars without CODE_*
		sendFail bool
		wantText string // fallback output
	}{
		{"attrs", nil, func(l *slog.Logger) {
			l.Info("lease renewed", "origin_ref", "o-1", "lease_ref", "l 2", "took", 3*time.Millisecond)
		}, []sent{{`lease renewed origin_ref=o-1 lease_ref="l 2" took=3ms`, journal.PriInfo, map[string]string{
			"MSG": "lease renewed", "ORIGIN_REF": "o-1", "LEASE_REF": "l 2", "TOOK": "3ms"}}}, false, ""},
		{"levels", slog.LevelDebug, func(l *slog.Logger) {
			l.Debug("d")
			l.Warn("w")
			l.Error("e", "err", errors.New("disk full"))
			l.Log(context.Background(), slog.LevelError+4, "worse")
		}, []sent{
			{"d", journal.PriDebug, map[string]string{"MSG": "d"}},
			{"w", journal.PriWarning, map[string]string{"MSG": "w"}},
			{`e err="disk full"`, journal.PriErr, map[string]string{"MSG": "e", "ERR": "disk full"}},
			{"worse", journal.PriErr, map[string]string{"MSG": "worse"}},
		}, false, ""},
		{"below level", slog.LevelWarn, func(l *slog.Logger) { l.Info("hidden") }, nil, false, ""},
		{"groups", nil, func(l *slog.Logger) {
			l.With("a", 1).WithGroup("req").With("id", "r1").WithGroup("empty").Info("m",
				slog.Group("", "inlined", true), slog.Group("none"), "", nil)
			l.WithGroup("g").Info("m2", slog.Group("h", "k", "v"), slog.Time("t", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
		}, []sent{
			{"m a=1 req.id=r1 req.empty.inlined=true", journal.PriInfo, map[string]string{
				"MSG": "m", "A": "1", "REQ_ID": "r1", "REQ_EMPTY_INLINED": "true"}},
			{"m2 g.h.k=v g.t=2024-01-02T03:04:05Z", journal.PriInfo, map[string]string{
				"MSG": "m2", "G_H_K": "v", "G_T": "2024-01-02T03:04:05Z"}},
		}, false, ""},
		{"reserved and odd", nil, func(l *slog.Logger) {
			l.Info("m", "message", "x=y", "multi", "a\nb", "empty", "")
		}, []sent{{`m message="x=y" multi="a\nb" empty=""`, journal.PriInfo, map[string]string{
			"MSG": "m", "ATTR_MESSAGE": "x=y", "MULTI": "a\nb", "EMPTY": ""}}}, false, ""},
		{"send fails", nil, func(l *slog.Logger) { l.With("origin_ref", "o-1").Info("m", "k", "v") },
			nil, true, "level=INFO msg=m origin_ref=o-1 k=v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []sent
			var text bytes.Buffer
			h := &journalHandler{
				level: tt.level,
				send: func(msg string, p journal.Priority, vars map[string]string) error {
					if tt.sendFail {
						return errors.New("no journald")
					}
					for _, k := range []string{"CODE_FILE", "CODE_LINE", "CODE_FUNC"} {
						if vars[k] == "" {
							t.Errorf("%s missing", k)
						}
						delete(vars, k)
					}
					got = append(got, sent{msg, p, vars})
					return nil
				},
				fallback: slog.NewTextHandler(&text, &slog.HandlerOptions{
					ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
						if a.Key == slog.TimeKey && len(groups) == 0 {
							return slog.Attr{}
						}
						return a
					},
				}),
			}
			tt.log(slog.New(h))
			if len(got) != len(tt.want) {
				t.Fatalf("sent %d records, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i].msg != tt.want[i].msg || got[i].pri != tt.want[i].pri || !maps.Equal(got[i].vars, tt.want[i].vars) {
					t.Errorf("record %d:\n got %q %d %v\nwant %q %d %v", i, got[i].msg, got[i].pri, got[i].vars,
						tt.want[i].msg, tt.want[i].pri, tt.want[i].vars)
				}
			}
			if text.String() != tt.wantText {
				t.Errorf("fallback wrote %q, want %q", text.String(), tt.wantText)
			}
		})
	}
}
