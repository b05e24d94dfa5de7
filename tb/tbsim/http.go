package tbsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	maxJSONBody       = 1 << 20
	maxOTABody        = 64 << 20
	defaultRPCTimeout = 10 * time.Second
)

func (s *Server) startHTTP(addr string) error {
	ln, err := listen(addr)
	if err != nil {
		return fmt.Errorf("starting http api: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.httpSrv = srv
	s.httpURL = "http://" + ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http api stopped", "error", err)
		}
	}()
	s.log.Info("http api listening", "url", "http://"+ln.Addr().String())
	return nil
}

// Handler is the HTTP API (see the package documentation); it is what
// Options.HTTPAddr serves and can be mounted elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /api/devices", func(w http.ResponseWriter, _ *http.Request) {
		type out struct {
			Device
			Connected bool `json:"connected"`
		}
		var list []out
		for _, d := range s.Devices() {
			list = append(list, out{Device: d, Connected: s.Connected(d.Name)})
		}
		if list == nil {
			list = []out{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /api/devices", func(w http.ResponseWriter, r *http.Request) {
		var d Device
		if !readJSON(w, r, &d) {
			return
		}
		if err := s.AddDevice(d); err != nil {
			writeError(w, err)
			return
		}
		for _, x := range s.Devices() {
			if x.Name == d.Name {
				writeJSON(w, http.StatusCreated, x)
				return
			}
		}
	})
	mux.HandleFunc("GET /api/devices/{name}/telemetry", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.exists(w, name) {
			return
		}
		if key := r.URL.Query().Get("key"); key != "" {
			h := s.History(name, key)
			if h == nil {
				h = []TsValue{}
			}
			writeJSON(w, http.StatusOK, h)
			return
		}
		writeJSON(w, http.StatusOK, s.Latest(name))
	})
	mux.HandleFunc("GET /api/devices/{name}/attributes", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.exists(w, name) {
			return
		}
		switch r.URL.Query().Get("scope") {
		case "client":
			writeJSON(w, http.StatusOK, s.ClientAttributes(name))
		case "shared":
			writeJSON(w, http.StatusOK, s.SharedAttributes(name))
		case "":
			writeJSON(w, http.StatusOK, map[string]any{"client": s.ClientAttributes(name), "shared": s.SharedAttributes(name)})
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "scope must be client or shared"})
		}
	})
	mux.HandleFunc("POST /api/devices/{name}/attributes/shared", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		body, ok := readBody(w, r, maxJSONBody)
		if !ok {
			return
		}
		kvs, err := parseAttributes(body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a json object: " + err.Error()})
			return
		}
		m := map[string]any{}
		for _, e := range kvs {
			m[e.Key] = e.Value
		}
		if err := s.SetShared(name, m); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s.SharedAttributes(name))
	})
	mux.HandleFunc("DELETE /api/devices/{name}/attributes/shared", func(w http.ResponseWriter, r *http.Request) {
		var keys []string
		for k := range strings.SplitSeq(r.URL.Query().Get("keys"), ",") {
			if k != "" {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "keys query parameter required"})
			return
		}
		if err := s.DeleteShared(r.PathValue("name"), keys...); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/devices/{name}/rpc", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Method    string          `json:"method"`
			Params    json.RawMessage `json:"params"`
			OneWay    bool            `json:"oneWay"`
			TimeoutMs int64           `json:"timeoutMs"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if req.Method == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "method required"})
			return
		}
		timeout := defaultRPCTimeout
		if req.TimeoutMs > 0 {
			timeout = time.Duration(req.TimeoutMs) * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		var params any
		if len(req.Params) > 0 {
			params = req.Params
		}
		reply, err := s.RPC(ctx, r.PathValue("name"), req.Method, params, req.OneWay)
		switch {
		case err != nil:
			writeError(w, err)
		case req.OneWay:
			writeJSON(w, http.StatusOK, map[string]string{"status": "sent"})
		case json.Valid(reply):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(reply)
		default:
			writeJSON(w, http.StatusOK, string(reply))
		}
	})
	mux.HandleFunc("PUT /api/devices/{name}/ota/{kind}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := readOTAPackage(w, r)
		if !ok {
			return
		}
		if err := s.AssignOTA(r.PathValue("name"), r.PathValue("kind"), p); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s.SharedAttributes(r.PathValue("name")))
	})
	mux.HandleFunc("DELETE /api/devices/{name}/ota/{kind}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.UnassignOTA(r.PathValue("name"), r.PathValue("kind")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/devices/{name}/claims", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.exists(w, name) {
			return
		}
		c := s.Claims(name)
		if c == nil {
			c = []Claim{}
		}
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("POST /api/devices/{name}/rename", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := s.RenameDevice(r.PathValue("name"), req.Name); err != nil {
			writeError(w, err)
			return
		}
		for _, x := range s.Devices() {
			if x.Name == req.Name {
				writeJSON(w, http.StatusOK, x)
				return
			}
		}
	})
	mux.HandleFunc("DELETE /api/devices/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteDevice(r.PathValue("name")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/devices/{name}/dropped", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.exists(w, name) {
			return
		}
		writeJSON(w, http.StatusOK, s.Dropped(name))
	})
	mux.HandleFunc("GET /api/gateways/{name}/devices", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.exists(w, name) {
			return
		}
		list := s.SubDevices(name)
		if list == nil {
			list = []string{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("DELETE /api/gateways/{name}/devices/{device}", func(w http.ResponseWriter, r *http.Request) {
		reason := GatewayDisconnectProcessingError
		if q := r.URL.Query().Get("reason"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 0 || n > 255 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reason must be an integer 0..255"})
				return
			}
			reason = n
		}
		if err := s.DropSubDevice(r.PathValue("name"), r.PathValue("device"), reason); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/gateways/{name}/rate-limits", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var req struct {
			Gateway *RateLimits `json:"gateway"`
			Devices *RateLimits `json:"devices"`
			// The flat form sets the sub-device bucket only.
			RateLimits
		}
		if !readJSON(w, r, &req) || !s.exists(w, name) {
			return
		}
		flat := req.RateLimits != (RateLimits{})
		if flat && (req.Gateway != nil || req.Devices != nil) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `give {"gateway":…,"devices":…} or the flat sub-device limits, not both`})
			return
		}
		if flat {
			req.Devices = &req.RateLimits
		}
		for _, l := range []*RateLimits{req.Gateway, req.Devices} {
			if l == nil {
				continue
			}
			if !validLimits(w, *l) {
				return
			}
		}
		if req.Gateway != nil {
			s.SetRateLimits(name, *req.Gateway)
		}
		if req.Devices != nil {
			s.SetGatewayRateLimits(name, *req.Devices)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/devices/{name}/rate-limits", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var l RateLimits
		if !readJSON(w, r, &l) || !s.exists(w, name) {
			return
		}
		if !validLimits(w, l) {
			return
		}
		s.SetRateLimits(name, l)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/device-profiles", func(w http.ResponseWriter, r *http.Request) {
		var p DeviceProfile
		if !readJSON(w, r, &p) {
			return
		}
		if err := s.AddDeviceProfile(p); err != nil {
			writeError(w, err)
			return
		}
		for _, x := range s.DeviceProfiles() {
			if x.Name == p.Name {
				writeJSON(w, http.StatusCreated, x)
				return
			}
		}
	})
	mux.HandleFunc("PUT /api/device-profiles/{name}/ota/{kind}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := readOTAPackage(w, r)
		if !ok {
			return
		}
		if err := s.AssignProfileOTA(r.PathValue("name"), r.PathValue("kind"), p); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /api/device-profiles/{name}/ota/{kind}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.UnassignProfileOTA(r.PathValue("name"), r.PathValue("kind")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/device-profiles", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.DeviceProfiles())
	})
	mux.HandleFunc("POST /api/provision-profiles", func(w http.ResponseWriter, r *http.Request) {
		var p ProvisionProfile
		if !readJSON(w, r, &p) {
			return
		}
		if p.Key == "" || p.Secret == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "key and secret required"})
			return
		}
		if p.Strategy != "" && p.Strategy != StrategyAllowCreate && p.Strategy != StrategyCheckPreProvisioned {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown strategy %q", p.Strategy)})
			return
		}
		s.AddProvisionProfile(p)
		w.WriteHeader(http.StatusCreated)
	})
	return mux
}

func (s *Server) exists(w http.ResponseWriter, name string) bool {
	s.mu.Lock()
	_, ok := s.devices[name]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("device %q: %v", name, ErrUnknownDevice)})
	}
	return ok
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
		}
		return nil, false
	}
	return b, true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := readBody(w, r, maxJSONBody)
	if !ok {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid json body: " + err.Error()})
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrUnknownDevice):
		code = http.StatusNotFound
	case errors.Is(err, ErrDuplicate):
		code = http.StatusConflict
	case errors.Is(err, ErrRPCTimeout), errors.Is(err, ErrNoActiveConnection):
		code = http.StatusGatewayTimeout
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// readOTAPackage reads a package assignment: the file as the body, its
// title, version, tag and checksum algorithm as query parameters.
func readOTAPackage(w http.ResponseWriter, r *http.Request) (OTAPackage, bool) {
	body, ok := readBody(w, r, maxOTABody)
	if !ok {
		return OTAPackage{}, false
	}
	q := r.URL.Query()
	return OTAPackage{Title: q.Get("title"), Version: q.Get("version"), Tag: q.Get("tag"),
		ChecksumAlgorithm: q.Get("algorithm"), Data: body}, true
}

// validLimits answers 400 for rate limits ThingsBoard would not take.
func validLimits(w http.ResponseWriter, l RateLimits) bool {
	if err := validateRateLimits(l); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return false
	}
	return true
}
