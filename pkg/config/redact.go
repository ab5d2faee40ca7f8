package config

import (
	"net/url"
	"sort"
	"strings"
)

// redacted replaces every secret that /-/config would otherwise show.
const redacted = "***"

// publicQueryKeys are the URL query parameters /-/config shows as they are;
// every other parameter's value is hidden, so that a driver option nobody
// listed here (password=, sslpassword=, token=, …) never leaks.
var publicQueryKeys = map[string]bool{
	"application_name": true, "charset": true, "connect_timeout": true, "database": true, "dbname": true,
	"host": true, "mode": true, "port": true, "sslmode": true, "target_session_attrs": true,
	"unix_socket": true, "user": true, "username": true,
}

// RedactURL is the redaction /-/config applies to DATABASE, for other
// places that print such a URL (see redactURL).
func RedactURL(s string) string { return redactURL(s) }

// redactURL hides the secrets of a URL such as SQLAlchemy's DATABASE: the
// password of the userinfo, every query value but the harmless ones above, and
// the fragment. It parses with net/url; a URL that net/url refuses or reads
// ambiguously (a password holding '@' or '/', which SQLAlchemy users write
// unescaped) is taken apart by hand, taking the last '@' before the path as
// the end of the userinfo, and whatever cannot be told apart is hidden whole.
// A string without "://" is a plain value and comes back as it is.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.Opaque == "" && !strings.Contains(u.Path, "@") &&
		(u.User != nil || !strings.Contains(u.Host, "@")) && strings.Count(rest, "@") == countUser(u) {
		out := scheme + "://"
		if u.User != nil {
			out += userinfo(u.User.Username(), hasPassword(u.User))
		}
		out += u.Host + u.EscapedPath()
		return out + redactQuery(u.RawQuery, u.ForceQuery) + redactFragment(u.Fragment)
	}

	// By hand: the userinfo ends at the first '@' after which a host follows
	// (net/url must read it as a host, and no '@' may follow before the
	// query). When none does, nothing after the scheme can be told apart.
	user, host := "", rest
	if strings.Contains(rest, "@") && !strings.HasPrefix(rest, "/") {
		info, after, found := splitUserinfo(rest)
		if !found {
			return scheme + "://" + redacted
		}
		name, _, hasPass := strings.Cut(info, ":")
		user, host = userinfo(name, hasPass), after
	}
	frag := ""
	if i := strings.IndexByte(host, '#'); i >= 0 {
		host, frag = host[:i], host[i+1:]
	}
	host, query, hasQuery := strings.Cut(host, "?")
	return scheme + "://" + user + host + redactQuery(query, hasQuery) + redactFragment(frag)
}

// splitUserinfo finds the end of the userinfo in rest (a URL after "://").
func splitUserinfo(rest string) (info, after string, found bool) {
	for i := 0; i < len(rest); i++ {
		if rest[i] != '@' {
			continue
		}
		cand := rest[i+1:]
		beforeQuery, _, _ := strings.Cut(cand, "?")
		beforeQuery, _, _ = strings.Cut(beforeQuery, "#")
		if strings.Contains(beforeQuery, "@") {
			continue
		}
		if u, err := url.Parse("db://" + cand); err == nil && u.User == nil && u.Host != "" {
			return rest[:i], cand, true
		}
	}
	return "", "", false
}

// countUser is the number of '@' a parsed URL accounts for: one for its userinfo.
func countUser(u *url.URL) int {
	n := strings.Count(u.RawQuery, "@") + strings.Count(u.Fragment, "@")
	if u.User != nil {
		n++
	}
	return n
}

func hasPassword(u *url.Userinfo) bool {
	_, ok := u.Password()
	return ok
}

func userinfo(name string, hasPass bool) string {
	if hasPass {
		return name + ":" + redacted + "@"
	}
	return name + "@"
}

// redactQuery returns "?query" with the values of all but publicQueryKeys
// hidden, or "" when there is no query. A query that does not parse is hidden
// whole.
func redactQuery(raw string, force bool) string {
	if raw == "" {
		if force {
			return "?"
		}
		return ""
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "?" + redacted
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range vals[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			if !publicQueryKeys[strings.ToLower(k)] {
				v = redacted
			}
			if strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
				k = redacted // not a parameter name: part of a secret that ran into the query
			}
			b.WriteString(strings.ReplaceAll(url.QueryEscape(k)+"="+url.QueryEscape(v), "%2A", "*"))
		}
	}
	return "?" + b.String()
}

func redactFragment(f string) string {
	if f == "" {
		return ""
	}
	return "#" + redacted
}

func redactAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = redactURL(s)
	}
	return out
}
