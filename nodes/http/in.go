package http

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/internal/msgfield"
	"github.com/tbflow/tbflow/tb"
)

const (
	category = "http"
	color    = "#e7e7ae"
)

// Sources of a device name or profile in http-in.
const (
	sourceNone     = "none"
	sourceConstant = "constant"
	sourcePath     = "path"
	sourceQuery    = "query"
	sourcePayload  = "payload"
)

// Authentication of http-in.
const (
	authNone  = "none"
	authToken = "token"
	authBasic = "basic"
)

func init() {
	named := map[string][]any{"deviceSource": {sourceConstant, sourcePath, sourceQuery, sourcePayload}}
	engine.Register(engine.Type{
		Name: "http-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "http in", Color: color, Icon: "http",
		OutputLabels: []string{"posts"},
		Summary:      "An HTTP endpoint that devices post JSON to, with a token check; each post becomes a message for its device.",
		Help: `Serves **method** **path** on its own listener at **listen** (loopback by default), like the ThingsBoard IoT
Gateway's REST connector. Devices and scripts post JSON:

    curl -X POST -H 'Authorization: Bearer TOKEN' -d '{"temperature":21.5}' http://127.0.0.1:8081/api/v1/boiler-3/telemetry

Each accepted post is answered ` + "`200 {\"ok\":true}`" + ` once the flow took it, and sent on as:

- ` + "`msg.payload`" + `: the JSON body (an object, or an array of records, ready for ` + "`tb-telemetry-out`" + `);
- ` + "`msg.device`" + ` and ` + "`msg.deviceType`" + `: the device name and profile, from a **constant**, a ` + "`{name}`" + ` wildcard of the
  **path** (` + "`/api/v1/{device}/telemetry`" + `), a **query** parameter (` + "`?device=boiler-3`" + `) or a **payload** field (taken
  out of the payload); wire to a ` + "`gw-device`" + ` whose device is empty, then ` + "`tb-telemetry-out`" + `;
- ` + "`msg.topic`" + `: the request path; ` + "`msg.ts`" + `: when it arrived (Unix ms); ` + "`msg.http`" + `: ` + "`{method, path, query, remote}`" + `
  (never the request's headers, which carry the credentials).

**auth**: ` + "`token`" + ` wants ` + "`Authorization: Bearer <secret>`" + `, ` + "`basic`" + ` wants HTTP basic credentials (**username** and
**secret**); a wrong or missing one is answered 401. ` + "`none`" + ` is allowed only on a loopback address.

Bounded: a body over **maxBytes** is answered 413, a request slower than **timeout** is cut off,
headers are limited to 16 KiB. A body that is not JSON, or lacks the device, is answered 400 and
reported to ` + "`catch`" + `. When the flow is too slow to take a post within **timeout** the answer is 503, so
the device sends it again.

Several ` + "`http-in`" + ` nodes may share one **listen** address with different paths. Status: ` + "`listening on …`" + `, or the
error (the address is taken, say) while the engine retries opening it.`,
		Fields: []engine.Field{
			{Name: "listen", Label: "Listen address", Kind: engine.KindString, Default: "127.0.0.1:8081", Help: "host:port to listen on; 127.0.0.1 takes posts from this machine only, 0.0.0.0 from the network (then auth is required).", Example: "0.0.0.0:8081"},
			{Name: "path", Label: "Path", Kind: engine.KindString, Default: "/telemetry", Help: "URL path to serve; `{name}` matches one path segment (`/api/v1/{device}/telemetry`).", Example: "/api/v1/{device}/telemetry"},
			{Name: "method", Label: "Method", Kind: engine.KindEnum, Default: "POST", Enum: []string{"POST", "PUT"}, Help: "HTTP method devices use."},
			{Name: "auth", Label: "Authentication", Kind: engine.KindEnum, Default: authToken, Enum: []string{authToken, authBasic, authNone}, Help: "`token`: an `Authorization: Bearer` token; `basic`: HTTP basic user and password; `none`: anyone who reaches the address (loopback only)."},
			{Name: "username", Label: "User name", Kind: engine.KindString, Default: "", Help: "The user name devices send with basic authentication.", ShowIf: map[string][]any{"auth": {authBasic}}},
			{Name: "secret", Label: "Token or password", Kind: engine.KindSecret, Help: "The bearer token, or the basic-authentication password (a secret).", Example: "${HTTP_IN_TOKEN}", ShowIf: map[string][]any{"auth": {authToken, authBasic}}},
			{Name: "deviceSource", Label: "Device name from", Kind: engine.KindEnum, Default: sourceNone, Enum: []string{sourceNone, sourceConstant, sourcePath, sourceQuery, sourcePayload}, Help: "Where msg.device comes from: nowhere, a constant, a `{name}` of the path, a query parameter or a payload field."},
			{Name: "device", Label: "Device name", Kind: engine.KindString, Default: "", Help: "The device name every post is for.", ShowIf: map[string][]any{"deviceSource": {sourceConstant}}},
			{Name: "deviceParam", Label: "Device name parameter", Kind: engine.KindString, Default: "device", Help: "The path wildcard (`{device}`) or query parameter holding the device name.", ShowIf: map[string][]any{"deviceSource": {sourcePath, sourceQuery}}},
			{Name: "deviceField", Label: "Device name field", Kind: engine.KindString, Default: "", Help: "Payload field holding the device name (a dotted path for nested objects).", Example: "serialNumber", ShowIf: map[string][]any{"deviceSource": {sourcePayload}}},
			{Name: "typeSource", Label: "Device profile from", Kind: engine.KindEnum, Default: sourceConstant, Enum: []string{sourceConstant, sourcePath, sourceQuery, sourcePayload}, Help: "Where msg.deviceType (the ThingsBoard device profile) comes from.", ShowIf: named},
			{Name: "deviceType", Label: "Device profile", Kind: engine.KindString, Default: "default", Help: "The device profile of every post's device.", ShowIf: map[string][]any{"typeSource": {sourceConstant}, "deviceSource": named["deviceSource"]}},
			{Name: "typeParam", Label: "Device profile parameter", Kind: engine.KindString, Default: "type", Help: "The path wildcard or query parameter holding the device profile.", ShowIf: map[string][]any{"typeSource": {sourcePath, sourceQuery}, "deviceSource": named["deviceSource"]}},
			{Name: "typeField", Label: "Device profile field", Kind: engine.KindString, Default: "", Help: "Payload field holding the device profile.", ShowIf: map[string][]any{"typeSource": {sourcePayload}, "deviceSource": named["deviceSource"]}},
			{Name: "maxBytes", Label: "Largest body", Kind: engine.KindInt, Default: 64 << 10, Min: engine.Float(1), Max: engine.Float(16 << 20), Help: "Bodies larger than this many bytes are answered 413."},
			{Name: "timeout", Label: "Timeout", Kind: engine.KindDuration, Default: "10s", Min: engine.Float(0.01), Max: engine.Float(600), Help: "Longest time to read a request and hand it to the flow."},
		},
		New: engine.Construct(newIn),
	})
}

type inConfig struct {
	Listen       string          `json:"listen"`
	Path         string          `json:"path"`
	Method       string          `json:"method"`
	Auth         string          `json:"auth"`
	Username     string          `json:"username"`
	Secret       string          `json:"secret"`
	DeviceSource string          `json:"deviceSource"`
	Device       string          `json:"device"`
	DeviceParam  string          `json:"deviceParam"`
	DeviceField  string          `json:"deviceField"`
	TypeSource   string          `json:"typeSource"`
	DeviceType   string          `json:"deviceType"`
	TypeParam    string          `json:"typeParam"`
	TypeField    string          `json:"typeField"`
	MaxBytes     int64           `json:"maxBytes"`
	Timeout      engine.Duration `json:"timeout"`
}

var wildcardRE = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// Validate checks the address, the path and the device rules.
func (c *inConfig) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
		errs = append(errs, &engine.FieldError{Field: "listen", Message: fmt.Sprintf("%q is not host:port", c.Listen)})
	} else if c.Auth == authNone && !loopback(host) {
		errs = append(errs, &engine.FieldError{Field: "auth", Message: "listening beyond loopback (" + c.Listen + ") needs token or basic authentication"})
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, &engine.FieldError{Field: "path", Message: "must start with /"})
	} else if err := checkPattern(c.Method + " " + c.Path); err != nil {
		errs = append(errs, &engine.FieldError{Field: "path", Message: err.Error()})
	}
	if c.Auth != authNone && c.Secret == "" {
		errs = append(errs, &engine.FieldError{Field: "secret", Message: "a token or password is needed for " + c.Auth + " authentication"})
	}
	if c.Auth == authBasic && c.Username == "" {
		errs = append(errs, &engine.FieldError{Field: "username", Message: "a user name is needed for basic authentication"})
	}
	wild := map[string]bool{}
	for _, m := range wildcardRE.FindAllStringSubmatch(c.Path, -1) {
		wild[m[1]] = true
	}
	check := func(source, constField, constVal, paramField, param, fieldField, field string) {
		switch source {
		case sourceConstant:
			if constVal == "" {
				errs = append(errs, &engine.FieldError{Field: constField, Message: "a name is needed when it is a constant"})
			}
		case sourcePath:
			if !wild[param] {
				errs = append(errs, &engine.FieldError{Field: paramField, Message: fmt.Sprintf("the path %q has no {%s}", c.Path, param)})
			}
		case sourceQuery:
			if param == "" {
				errs = append(errs, &engine.FieldError{Field: paramField, Message: "a query parameter name is needed"})
			}
		case sourcePayload:
			if field == "" || strings.HasPrefix(field, ".") || strings.HasSuffix(field, ".") || strings.Contains(field, "..") {
				errs = append(errs, &engine.FieldError{Field: fieldField, Message: "a payload field (such as `serialNumber` or `meta.name`) is needed"})
			}
		}
	}
	check(c.DeviceSource, "device", c.Device, "deviceParam", c.DeviceParam, "deviceField", c.DeviceField)
	if c.DeviceSource != sourceNone {
		check(c.TypeSource, "deviceType", c.DeviceType, "typeParam", c.TypeParam, "typeField", c.TypeField)
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// nameRule takes a device name or profile from a request.
type nameRule struct {
	what, source, value, param, field string
}

func (r nameRule) pick(req *nethttp.Request, payload any) (string, bool, error) {
	var v string
	switch r.source {
	case sourceNone:
		return "", false, nil
	case sourceConstant:
		return r.value, true, nil
	case sourcePath:
		v = req.PathValue(r.param)
	case sourceQuery:
		v = req.URL.Query().Get(r.param)
		if v == "" {
			return "", true, fmt.Errorf("no query parameter %q for the %s", r.param, r.what)
		}
	case sourcePayload:
		x, ok := msgfield.Get(payload, r.field)
		if !ok {
			return "", true, fmt.Errorf("payload has no field %q for the %s", r.field, r.what)
		}
		if v, ok = msgfield.Text(x); !ok {
			return "", true, fmt.Errorf("payload field %q (the %s) must be a non-empty string or a number", r.field, r.what)
		}
		msgfield.Delete(payload, r.field)
	}
	if v == "" {
		return "", true, fmt.Errorf("no %s in the request", r.what)
	}
	return v, true, nil
}

type inNode struct {
	nc     *engine.NodeContext
	conf   *inConfig
	device nameRule
	dtype  nameRule

	mu     sync.Mutex
	life   context.Context
	cancel context.CancelFunc
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := &inNode{nc: nc, conf: c,
		device: nameRule{what: "device name", source: c.DeviceSource, value: c.Device, param: c.DeviceParam, field: c.DeviceField},
		dtype:  nameRule{what: "device profile", source: sourceNone}}
	if c.DeviceSource != sourceNone {
		n.dtype = nameRule{what: "device profile", source: c.TypeSource, value: c.DeviceType, param: c.TypeParam, field: c.TypeField}
	}
	return n, nil
}

// Start opens the listener (or joins the one at the same address) and
// adds the node's route. When the address is taken the engine shows the
// error and tries again.
func (n *inNode) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	life, cancel := context.WithCancel(context.Background())
	if err := addRoute(n.conf.Listen, n, n.conf.Method+" "+n.conf.Path, nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		n.serve(life, w, r)
	})); err != nil {
		cancel()
		return fmt.Errorf("http-in %s: %w", n.conf.Listen, err)
	}
	n.life, n.cancel = life, cancel
	n.nc.Status(engine.Status{Fill: "green", Shape: "dot", Text: "listening on " + n.conf.Listen})
	return nil
}

// Stop removes the route; the listener closes with its last route.
func (n *inNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.cancel = nil
	removeRoute(n.conf.Listen, n)
	return nil
}

func reply(w nethttp.ResponseWriter, code int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// authorized checks the request's credentials in constant time.
func (n *inNode) authorized(r *nethttp.Request) bool {
	switch n.conf.Auth {
	case authToken:
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(n.conf.Secret)) == 1
	case authBasic:
		u, p, ok := r.BasicAuth()
		return ok && subtle.ConstantTimeCompare([]byte(u), []byte(n.conf.Username))&subtle.ConstantTimeCompare([]byte(p), []byte(n.conf.Secret)) == 1
	}
	return true
}

// serve takes one post.
func (n *inNode) serve(life context.Context, w nethttp.ResponseWriter, r *nethttp.Request) {
	deadline := time.Now().Add(n.conf.Timeout.D())
	rc := nethttp.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	if !n.authorized(r) {
		if n.conf.Auth == authBasic {
			w.Header().Set("WWW-Authenticate", `Basic realm="tbflow"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tbflow"`)
		}
		reply(w, nethttp.StatusUnauthorized, map[string]any{"error": "unauthorized"})
		return
	}
	body, err := io.ReadAll(nethttp.MaxBytesReader(w, r.Body, n.conf.MaxBytes))
	if err != nil {
		var tooBig *nethttp.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(w, nethttp.StatusRequestEntityTooLarge, map[string]any{"error": fmt.Sprintf("body over %d bytes", n.conf.MaxBytes)})
			return
		}
		reply(w, nethttp.StatusBadRequest, map[string]any{"error": "reading the body: " + err.Error()})
		return
	}
	fail := func(err error) {
		reply(w, nethttp.StatusBadRequest, map[string]any{"error": err.Error()})
		raw := body
		if len(raw) > 256 {
			raw = raw[:256]
		}
		em := engine.NewMsg(strings.ToValidUTF8(string(raw), "?"))
		em.Topic = r.URL.Path
		n.nc.Error(fmt.Errorf("http-in %s: %w", r.URL.Path, err), em)
	}
	var v any
	if err := tb.UnmarshalExact(body, &v); err != nil {
		fail(fmt.Errorf("body is not JSON: %w", err))
		return
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		fail(errors.New("body must be a JSON object or an array"))
		return
	}
	device, hasDevice, err := n.device.pick(r, v)
	if err != nil {
		fail(err)
		return
	}
	dtype, hasType, err := n.dtype.pick(r, v)
	if err != nil {
		fail(err)
		return
	}
	m := engine.NewMsg(v)
	m.Topic = r.URL.Path
	m.Set("ts", time.Now().UnixMilli())
	if hasDevice {
		m.Set("device", device)
	}
	if hasType {
		m.Set("deviceType", dtype)
	}
	query := map[string]any{}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			query[k] = vs[0]
		}
	}
	m.Set("http", map[string]any{"method": r.Method, "path": r.URL.Path, "query": query, "remote": r.RemoteAddr})
	ctx, cancel := context.WithDeadline(life, deadline)
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	if err := n.nc.Send(ctx, m); err != nil {
		reply(w, nethttp.StatusServiceUnavailable, map[string]any{"error": "the flow did not take the post in time; send it again"})
		return
	}
	reply(w, nethttp.StatusOK, map[string]any{"ok": true})
}

var _ engine.Node = (*inNode)(nil)
