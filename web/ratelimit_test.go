package web_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/tbflow/tbflow/web"
)

// parallel sends n requests at once and counts the answers by status.
func parallel(s *apiServer, n int, req func() int) map[int]int {
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			c := req()
			mu.Lock()
			codes[c]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return codes
}

// TestParallelWrongLoginsAreLimited: 200 wrong passwords at once get at
// most the burst of checks; the rest are refused before bcrypt.
func TestParallelWrongLoginsAreLimited(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{User: "admin", PasswordHash: hashFor(t, "pa55")}))
	codes := parallel(s, 200, func() int {
		c, _, _ := s.do("POST", "/api/login", `{"user":"admin","password":"guess"}`)
		return c
	})
	if codes[401] > 11 || codes[401]+codes[429] != 200 {
		t.Fatalf("200 parallel wrong logins: %v, want at most 11 checked (401) and the rest 429", codes)
	}
	basic := parallel(s, 50, func() int {
		req, _ := http.NewRequest("GET", s.url+"/api/flows", nil)
		req.SetBasicAuth("admin", "guess")
		resp, err := s.hs.Client().Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	})
	if basic[429] != 50 {
		t.Fatalf("basic credentials after the limit: %v, want all 429", basic)
	}
}

// TestParallelWrongTokensAreLimited: wrong bearer tokens count against the
// same budget, atomically; a right token is not counted.
func TestParallelWrongTokensAreLimited(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{Token: "right-token"}))
	for range 30 {
		if code, _, _ := s.do("GET", "/api/flows", "", "Authorization", "Bearer right-token"); code != 200 {
			t.Fatalf("right token: %d", code)
		}
	}
	codes := parallel(s, 200, func() int {
		c, _, _ := s.do("GET", "/api/flows", "", "Authorization", "Bearer wrong-token")
		return c
	})
	if codes[401] > 11 || codes[401]+codes[429] != 200 {
		t.Fatalf("200 parallel wrong tokens: %v, want at most 11 checked (401) and the rest 429", codes)
	}
	if code, hdr, _ := s.do("GET", "/api/flows", "", "Authorization", "Bearer right-token"); code != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("right token while limited: %d", code)
	}
}
