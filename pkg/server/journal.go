package server

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
)

// NewLogHandler returns the daemon's slog handler. When the process's stderr is connected to journald (systemd
// sets JOURNAL_STREAM), records go to journald's native protocol: PRIORITY from the level, each attribute as an
// upper-case field (origin_ref → ORIGIN_REF, group g's a → G_A), the message alone in MSG (EVENT is left to the attribute of that name), the source in
// CODE_FILE/CODE_LINE/CODE_FUNC, and a MESSAGE of the message followed by key=value attributes, so that plain
// journalctl output stays readable. A record journald refuses is written to stderr instead. Otherwise it is
// [slog.NewTextHandler] on stderr. Records below level are dropped; a nil level means [slog.LevelInfo].
//
// The handler is safe for concurrent use.
func NewLogHandler(stderr io.Writer, level slog.Leveler) slog.Handler {
	text := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if ok, _ := journal.StderrIsJournalStream(); ok {
		return &journalHandler{level: level, send: journal.Send, fallback: text}
	}
	return text
}

// journalHandler is the journald half of [NewLogHandler].
type journalHandler struct {
	level    slog.Leveler
	send     func(message string, p journal.Priority, vars map[string]string) error
	fallback slog.Handler // same attrs and groups, used when send fails
	attrs    []field      // from WithAttrs, already qualified by their groups
	groups   []string     // open groups, for later attrs
}

// field is one attribute, flattened: key is the dotted slog key ("g.a"), value its text.
type field struct{ key, value string }

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return l >= min
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = appendFields(h.attrs[:len(h.attrs):len(h.attrs)], strings.Join(h.groups, "."), as)
	h2.fallback = h.fallback.WithAttrs(as)
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	h2.fallback = h.fallback.WithGroup(name)
	return &h2
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	fields := h.attrs
	if r.NumAttrs() > 0 {
		as := make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool { as = append(as, a); return true })
		fields = appendFields(fields[:len(fields):len(fields)], strings.Join(h.groups, "."), as)
	}
	msg, vars := journalEntry(r.Message, fields)
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		vars["CODE_FILE"], vars["CODE_LINE"], vars["CODE_FUNC"] = f.File, strconv.Itoa(f.Line), f.Function
	}
	if err := h.send(msg, priority(r.Level), vars); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

// journalEntry returns the readable MESSAGE and the other fields of one record.
func journalEntry(msg string, fields []field) (string, map[string]string) {
	vars := make(map[string]string, len(fields)+4)
	vars["MSG"] = msg
	var b strings.Builder
	b.WriteString(msg)
	for _, f := range fields {
		vars[journalField(f.key)] = f.value
		b.WriteByte(' ')
		b.WriteString(quoteIfNeeded(f.key))
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(f.value))
	}
	return b.String(), vars
}

// appendFields flattens as under the dotted group prefix, following slog's rules: values are resolved, empty
// attributes and empty groups are dropped, a group with an empty key is inlined.
func appendFields(dst []field, prefix string, as []slog.Attr) []field {
	for _, a := range as {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			continue
		}
		if a.Key == "" && a.Value.Kind() != slog.KindGroup {
			continue
		}
		key := a.Key
		if prefix != "" && key != "" {
			key = prefix + "." + key
		} else if key == "" {
			key = prefix
		}
		switch a.Value.Kind() {
		case slog.KindGroup:
			dst = appendFields(dst, key, a.Value.Group())
		case slog.KindTime:
			dst = append(dst, field{key, a.Value.Time().Format(time.RFC3339Nano)})
		default:
			dst = append(dst, field{key, a.Value.String()})
		}
	}
	return dst
}

// reservedFields are set by the handler itself; attributes mapping to them get an ATTR_ prefix.
var reservedFields = map[string]bool{
	"MESSAGE": true, "PRIORITY": true, "MSG": true, "CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true,
}

// journalField maps a dotted slog key to a valid journald field name: upper-case ASCII letters, digits and
// underscores, not starting with an underscore (trusted fields) or a digit, at most 64 bytes, never one of the
// fields the handler sets itself. "origin_ref" → "ORIGIN_REF", "req.id" → "REQ_ID".
func journalField(key string) string {
	b := make([]byte, 0, len(key))
	for _, c := range key {
		switch {
		case 'a' <= c && c <= 'z':
			b = append(b, byte(c-'a'+'A'))
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			b = append(b, byte(c))
		default:
			b = append(b, '_')
		}
	}
	name := strings.TrimLeft(string(b), "_")
	if name == "" || ('0' <= name[0] && name[0] <= '9') || reservedFields[name] {
		name = "ATTR_" + name
	}
	return strings.TrimRight(name[:min(len(name), 64)], "_")
}

// priority maps a slog level to a syslog priority.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

// quoteIfNeeded quotes s as slog's text handler would: when empty or containing spaces, quotes, '=' or
// non-printable runes.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '=' || r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// NewJournalHandler returns a handler that writes records at level and above
// to journald as [NewLogHandler] does under systemd, or nil when journald is
// not there. For commands run outside a unit (a package's postinst) whose
// records belong in the journal beside their printed report.
func NewJournalHandler(level slog.Leveler) slog.Handler {
	if !journal.Enabled() {
		return nil
	}
	return &journalHandler{level: level, send: journal.Send, fallback: slog.NewTextHandler(io.Discard, nil)}
}
