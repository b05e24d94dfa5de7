package web

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// hostAllow is the Host allow-list. A browser sends the name it resolved
// in Host, so a page on a name that an attacker re-pointed at 127.0.0.1
// (DNS rebinding) arrives with that name and is refused. Loopback names
// and addresses are always allowed; further names come from
// Options.AllowedHosts.
type hostAllow struct {
	any      bool
	names    map[string]bool // lower case, no port
	suffixes []string        // ".example.com" for "*.example.com"
}

func newHostAllow(hosts []string) (*hostAllow, error) {
	h := &hostAllow{names: map[string]bool{}}
	for _, raw := range hosts {
		s := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case s == "*":
			h.any = true
			continue
		case s == "":
			return nil, fmt.Errorf("web: allowed host %q: empty", raw)
		case strings.Contains(s, "/"):
			return nil, fmt.Errorf("web: allowed host %q: want a host name or address, not a URL", raw)
		}
		if host, _, err := net.SplitHostPort(s); err == nil {
			s = host
		}
		s = strings.Trim(s, "[]")
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("web: allowed host %q: a wildcard is *.domain", raw)
			}
			h.suffixes = append(h.suffixes, "."+rest)
			continue
		}
		if strings.Contains(s, "*") {
			return nil, fmt.Errorf("web: allowed host %q: a wildcard is *.domain", raw)
		}
		h.names[s] = true
	}
	return h, nil
}

// hostName returns the name part of a Host header in lower case, without
// port or brackets.
func hostName(host string) string {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.Trim(host, "[]"), ".")
}

// allowed reports whether a Host header names this server.
func (h *hostAllow) allowed(host string) bool {
	if h.any {
		return true
	}
	name := hostName(host)
	if name == "" {
		return false
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// RFC 6761: browsers resolve these to loopback themselves.
		return true
	}
	if ip := net.ParseIP(name); ip != nil && ip.IsLoopback() {
		return true
	}
	if h.names[name] {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// checkHost refuses a request whose Host is not on the allow-list with 421
// Misdirected Request.
func (s *Server) checkHost(w http.ResponseWriter, r *http.Request) bool {
	if s.hosts.allowed(r.Host) {
		return true
	}
	writeError(w, &apiError{
		Code:    codeMisdirected,
		Message: fmt.Sprintf("host %q is not served here: add it with --allowed-host", hostName(r.Host)),
		status:  http.StatusMisdirectedRequest,
	})
	return false
}

// deadlineBody bounds reading a request body: the connection's read
// deadline is set when the handler starts and cleared once the body is
// read, so a slow handler afterwards is not cut short.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func newDeadlineBody(w http.ResponseWriter, body io.ReadCloser, d time.Duration) io.ReadCloser {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return body // not supported by this ResponseWriter
	}
	return &deadlineBody{ReadCloser: body, rc: rc}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if errors.Is(err, io.EOF) {
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}
