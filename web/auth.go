package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// SessionCookie is the name of the login session cookie.
const SessionCookie = "tbflow_session"

// Login rate limit: each remote address may fail loginBurst times in a row,
// then once per loginRefill.
const (
	loginBurst  = 10
	loginRefill = 3 * time.Second
	// maxLimited bounds the addresses the limiter remembers.
	maxLimited = 10000
)

// identity is who a request authenticated as.
type identity struct {
	User string // empty for a token
}

type identityKey struct{}

type session struct {
	id      identity
	expires time.Time
}

// authenticator checks credentials and keeps login sessions.
type authenticator struct {
	token [32]byte // sha256 of the token; compared in constant time
	hasTk bool
	user  string
	hash  []byte
	ttl   time.Duration

	mu       sync.Mutex
	sessions map[[32]byte]session // by sha256 of the cookie value
	verified map[[32]byte]time.Time
	limits   map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newAuthenticator(a Auth, ttl time.Duration) (*authenticator, error) {
	au := &authenticator{ttl: ttl, sessions: map[[32]byte]session{}, verified: map[[32]byte]time.Time{}, limits: map[string]*bucket{}}
	if a.Token != "" {
		au.token, au.hasTk = sha256.Sum256([]byte(a.Token)), true
	}
	if (a.User == "") != (a.PasswordHash == "") {
		return nil, errors.New("web: a user needs a password hash and a password hash needs a user")
	}
	if a.User != "" {
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			return nil, fmt.Errorf("web: password hash: %w (make one with tbflow hash-password)", err)
		}
		au.user, au.hash = a.User, []byte(a.PasswordHash)
	}
	return au, nil
}

func (a *authenticator) enabled() bool { return a.hasTk || a.user != "" }

func (a *authenticator) checkToken(tok string) bool {
	if !a.hasTk {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1
}

// checkPassword verifies user and password. Successful checks are
// remembered for a minute so scripts sending basic credentials on every
// request do not pay for bcrypt each time.
func (a *authenticator) checkPassword(user, password string) bool {
	if a.user == "" {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + password))
	now := time.Now()
	a.mu.Lock()
	exp, ok := a.verified[key]
	a.mu.Unlock()
	if ok && now.Before(exp) {
		return true
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) == 1
	// bcrypt runs for a wrong user too, so timing does not tell users apart.
	passOK := bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil
	if !userOK || !passOK {
		return false
	}
	a.mu.Lock()
	if len(a.verified) >= 64 {
		clear(a.verified)
	}
	a.verified[key] = now.Add(time.Minute)
	a.mu.Unlock()
	return true
}

// reserve takes one attempt from addr's budget before a credential is
// checked, atomically, so parallel guesses cannot all pass a check made
// before any of them failed. It reports false when the budget is spent.
func (a *authenticator) reserve(addr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.refill(addr, time.Now())
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives a reserved attempt back: the credential was right.
func (a *authenticator) refund(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.refill(addr, time.Now())
	b.tokens = min(b.tokens+1, loginBurst)
}

func (a *authenticator) refill(addr string, now time.Time) *bucket {
	b := a.limits[addr]
	if b == nil {
		if len(a.limits) >= maxLimited {
			for k, v := range a.limits {
				if now.Sub(v.last) > loginBurst*loginRefill {
					delete(a.limits, k)
				}
			}
			// Still full: forget any one, so the table stays bounded.
			for k := range a.limits {
				if len(a.limits) < maxLimited {
					break
				}
				delete(a.limits, k)
			}
		}
		b = &bucket{tokens: loginBurst, last: now}
		a.limits[addr] = b
		return b
	}
	b.tokens = min(loginBurst, b.tokens+float64(now.Sub(b.last))/float64(loginRefill))
	b.last = now
	return b
}

func (a *authenticator) newSession(id identity) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	val := base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.sessions {
		if now.After(s.expires) {
			delete(a.sessions, k)
		}
	}
	a.sessions[sha256.Sum256([]byte(val))] = session{id: id, expires: now.Add(a.ttl)}
	return val, nil
}

func (a *authenticator) session(val string) (identity, bool) {
	key := sha256.Sum256([]byte(val))
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[key]
	if !ok {
		return identity{}, false
	}
	if time.Now().After(s.expires) {
		delete(a.sessions, key)
		return identity{}, false
	}
	return s.id, true
}

// endSession ends the login session of a cookie value and returns its key.
func (a *authenticator) endSession(val string) [32]byte {
	key := sha256.Sum256([]byte(val))
	a.mu.Lock()
	delete(a.sessions, key)
	a.mu.Unlock()
	return key
}

// cookieSession returns the login session r's cookie names, if it is a live
// one, and when it ends.
func (a *authenticator) cookieSession(r *http.Request) (key [32]byte, expires time.Time, ok bool) {
	if !a.enabled() {
		return key, expires, false
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return key, expires, false
	}
	key = sha256.Sum256([]byte(c.Value))
	a.mu.Lock()
	defer a.mu.Unlock()
	s, found := a.sessions[key]
	if !found {
		return key, expires, false
	}
	return key, s.expires, true
}

// authResult is the outcome of checking a request's credential.
type authResult int

const (
	authNone    authResult = iota // no valid credential
	authOK                        // a valid credential
	authLimited                   // too many failures from this address
)

// identify checks a request's credential: a bearer token, basic
// credentials or a session cookie. Bearer tokens and basic credentials
// take an attempt from the client address's budget before they are
// checked and give it back when they are right.
func (a *authenticator) identify(r *http.Request) (identity, authResult) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, bearer := strings.CutPrefix(h, "Bearer ")
		u, p, basic := r.BasicAuth()
		if bearer || basic {
			addr := remoteHost(r)
			if !a.reserve(addr) {
				return identity{}, authLimited
			}
			switch {
			case bearer && a.checkToken(strings.TrimSpace(tok)):
				a.refund(addr)
				return identity{}, authOK
			case basic && a.checkPassword(u, p):
				a.refund(addr)
				return identity{User: u}, authOK
			}
		}
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if id, ok := a.session(c.Value); ok {
			return id, authOK
		}
	}
	return identity{}, authNone
}

// remoteHost is the client's address as the rate limits count it: an IPv4
// address, or the /64 network of an IPv6 address (one host can use every
// address of its /64).
func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		h = r.RemoteAddr
	}
	if ip := net.ParseIP(h); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return h
}

// tooMany is the answer to a client over its attempt budget.
func tooMany(w http.ResponseWriter, what string) {
	w.Header().Set("Retry-After", fmt.Sprint(int(loginRefill/time.Second)))
	writeError(w, &apiError{Code: codeTooMany, Message: "too many failed " + what + ": wait and try again", status: http.StatusTooManyRequests})
}

// handleLogin checks {"token"} or {"user","password"} and sets a session
// cookie.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	a := s.auth
	if !a.enabled() {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	addr := remoteHost(r)
	if !a.reserve(addr) {
		tooMany(w, "logins")
		return
	}
	var body struct {
		Token    string `json:"token"`
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		a.refund(addr) // not a guess
		writeError(w, badRequest(`login body: want {"token": "…"} or {"user": "…", "password": "…"}`))
		return
	}
	var id identity
	ok := false
	switch {
	case body.Token != "":
		ok = a.checkToken(body.Token)
	case body.User != "":
		ok = a.checkPassword(body.User, body.Password)
		id.User = body.User
	}
	if !ok {
		s.log.Warn("login refused", "remote", addr, "user", body.User)
		writeError(w, &apiError{Code: codeUnauthorized, Message: "wrong credentials", status: http.StatusUnauthorized})
		return
	}
	a.refund(addr)
	val, err := a.newSession(id)
	if err != nil {
		writeError(w, &apiError{Code: codeInternal, Message: "creating a session: " + err.Error(), status: http.StatusInternalServerError})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: val, Path: "/", MaxAge: int(a.ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	s.log.Info("login", "remote", addr, "user", id.User)
	w.WriteHeader(http.StatusNoContent)
}

// handleLogout ends the session of the request's cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		s.endSession(s.auth.endSession(c.Value))
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.WriteHeader(http.StatusNoContent)
}

// handleSession tells the editor whether auth is on and whether this
// request carries a valid credential.
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	id, ok := r.Context().Value(identityKey{}).(identity)
	writeJSON(w, http.StatusOK, map[string]any{
		"auth":          s.auth.enabled(),
		"authenticated": ok || !s.auth.enabled(),
		"user":          id.User,
	})
}

// originAllowed applies the Origin rule to a state-changing request or a
// WebSocket upgrade: an Origin must be the server's own (scheme, host and
// port as the browser addressed it) or an allowed one; a request without
// Origin passes unless the browser marks it cross-site.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin != "" {
		o, ok := normOrigin(origin)
		if !ok {
			return false
		}
		if s.origins[o] {
			return true
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		self, ok := normOrigin(scheme + "://" + r.Host)
		if !ok || o != self {
			return false
		}
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

// normOrigin returns scheme://host[:port] in lower case without a default
// port, or false for anything that is not an http(s) origin.
func normOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	switch {
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	case scheme != "http" && scheme != "https":
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}
