package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

// TestHostAllowList: a page on a rebound name reaches 127.0.0.1 with its
// own name in Host and is refused on every path and on the upgrade.
func TestHostAllowList(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) {
		o.AllowedHosts = []string{"tbflow.example.com", "*.corp.example"}
	})
	port := s.url[strings.LastIndex(s.url, ":"):]
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1" + port, 200},
		{"localhost" + port, 200},
		{"LOCALHOST" + port, 200},
		{"editor.localhost" + port, 200},
		{"[::1]" + port, 200},
		{"127.0.0.2" + port, 200},
		{"tbflow.example.com" + port, 200},
		{"a.corp.example", 200},
		{"evil.example" + port, 421},
		{"corp.example", 421},
		{"localhost.evil.example", 421},
		{"tbflow.example.com.evil.example", 421},
		{"192.0.2.1" + port, 421},
	} {
		for _, path := range []string{"/healthz", "/api/flows", "/", "/metrics"} {
			code, _, b := s.do("GET", path, "", "Host", tc.host)
			if (code == 421) != (tc.want == 421) {
				t.Errorf("GET %s with Host %s: %d, want %d (%s)", path, tc.host, code, tc.want, b)
			}
			if code == 421 && !strings.Contains(string(b), "--allowed-host") {
				t.Errorf("421 does not say how to allow the host: %s", b)
			}
		}
		origin := "http://" + tc.host
		code, _, b := s.do("POST", "/api/validate", basicFlow, "Host", tc.host, "Origin", origin)
		if code != tc.want {
			t.Errorf("POST with Host %s and Origin %s: %d, want %d (%s)", tc.host, origin, code, tc.want, b)
		}
		_, resp, err := s.dialWS(http.Header{"Host": {tc.host}, "Origin": {origin}})
		switch {
		case tc.want == 200 && err != nil:
			t.Errorf("upgrade with Host %s refused: %v", tc.host, err)
		case tc.want == 421 && (err == nil || resp == nil || resp.StatusCode != 421):
			t.Errorf("upgrade with Host %s not refused with 421: %v", tc.host, err)
		}
	}
	// An allowed Host does not let a foreign page in: Origin must still be
	// the server's own.
	if code, _, _ := s.do("POST", "/api/validate", basicFlow, "Host", "tbflow.example.com", "Origin", "http://evil.example"); code != 403 {
		t.Errorf("foreign Origin with an allowed Host: %d, want 403", code)
	}
}

func TestHostAllowListAny(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.AllowedHosts = []string{"*"} })
	if code, _, _ := s.do("GET", "/healthz", "", "Host", "anything.example"); code != 200 {
		t.Fatalf("--allowed-host '*': %d", code)
	}
}

func TestHostAllowListRejectsBadEntries(t *testing.T) {
	eng := engine.New(engine.Options{})
	for _, h := range []string{"", "http://x.example", "a*.example", "*."} {
		if _, err := web.New(web.Options{Engine: eng, AllowedHosts: []string{h}}); err == nil {
			t.Errorf("allowed host %q accepted", h)
		}
	}
}
