package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/internal/msgfield"
	"github.com/tbflow/tbflow/tb"
)

func init() {
	engine.Register(engine.Type{
		Name: "http-request", Category: category, Inputs: 1, Outputs: 1,
		Label: "http request", Color: color, Icon: "http",
		OutputLabels: []string{"responses"},
		Summary:      "Calls a REST API every interval or for every message and emits the JSON answer.",
		Help: `Calls **method** **url** and sends the answer on — every **interval** (polling a REST API, like the
ThingsBoard IoT Gateway's Request connector) and for every message that arrives on the input.

- ` + "`msg.payload`" + `: the response body decoded by **format** (` + "`auto`" + `: JSON when the body parses, else text);
- ` + "`msg.statusCode`" + ` and ` + "`msg.http`" + `: ` + "`{status, url, latencyMs, contentType}`" + `;
- ` + "`msg.device`" + ` / ` + "`msg.deviceType`" + `: **device** and **deviceType** when set (wire to a ` + "`gw-device`" + ` whose device is
  empty, then ` + "`tb-telemetry-out`" + `); ` + "`msg.ts`" + `: when the answer came (Unix ms).

For a message, **url** may take values from it with ` + "`{{…}}`" + ` (` + "`http://meter/api/{{device}}/state`" + `, URL-escaped;
` + "`${NAME}`" + ` is an environment variable, as in every field); other fields of the message are kept, so an RPC can
go on to ` + "`tb-rpc-out`" + `. POST, PUT and PATCH send ` + "`msg.payload`" + ` as the body (text as it is, the rest as JSON).

**headers** are sent with every request; **authValue** is one more header (**authHeader**, ` + "`Authorization`" + ` by
default) whose value is a secret, such as ` + "`Bearer …`" + ` or an API key. An answer larger than **maxBytes** and a
call slower than **timeout** fail.

Failures: an answer outside 2xx, an answer that is not JSON with **format** ` + "`json`" + `, or a server that cannot be
reached. When polling, the node shows the error, reports it once to ` + "`catch`" + `, and tries again after a pause
that doubles from **interval** up to **backoffMax**; it shows ` + "`polling`" + ` again with the first good answer. A
message whose server cannot be reached waits and is retried by the engine; other failures go to
` + "`catch`" + ` with the message.

Status: ` + "`polling`" + ` / ` + "`ok`" + ` (green) or the error (red).`,
		Fields: []engine.Field{
			{Name: "url", Identity: true, Label: "URL", Kind: engine.KindString, Required: true, Help: "http:// or https:// address to call; `{{…}}` takes values from the message.", Example: "http://127.0.0.1:8090/api/weather"},
			{Name: "method", Label: "Method", Kind: engine.KindEnum, Default: "GET", Enum: []string{"GET", "POST", "PUT", "PATCH", "DELETE"}, Help: "HTTP method."},
			{Name: "interval", Label: "Poll interval", Kind: engine.KindDuration, Default: "0s", Min: engine.Float(0), Help: "Call the URL this often; 0 calls it only for messages."},
			{Name: "headers", Label: "Headers", Kind: engine.KindTable, Default: []any{}, Help: "Request headers sent with every call.",
				Fields: []engine.Field{
					{Name: "name", Label: "Name", Kind: engine.KindString, Required: true, Help: "Header name.", Example: "Accept"},
					{Name: "value", Label: "Value", Kind: engine.KindString, Default: "", Help: "Header value (use authValue for secrets)."},
				}},
			{Name: "authHeader", Label: "Secret header", Kind: engine.KindString, Default: "Authorization", Help: "Name of the header that carries authValue.", Advanced: true},
			{Name: "authValue", Label: "Secret header value", Kind: engine.KindSecret, Help: "Secret value of authHeader, such as `Bearer …` or an API key; empty sends no such header.", Example: "${API_TOKEN}"},
			{Name: "format", Label: "Response format", Kind: engine.KindEnum, Default: "auto", Enum: []string{"auto", "json", "text"}, Help: "`auto`: JSON when the body parses, else text. `json`: a body that is not JSON is an error. `text`: the body as text."},
			{Name: "device", Label: "Device name", Kind: engine.KindString, Default: "", Help: "msg.device of the answers; empty keeps the message's own.", Example: "Weather Station"},
			{Name: "deviceType", Label: "Device profile", Kind: engine.KindString, Default: "", Help: "msg.deviceType of the answers; empty sets none."},
			{Name: "timeout", Label: "Timeout", Kind: engine.KindDuration, Default: "10s", Min: engine.Float(0.01), Max: engine.Float(600), Help: "Longest time for one call, the answer included."},
			{Name: "maxBytes", Label: "Largest answer", Kind: engine.KindInt, Default: 1 << 20, Min: engine.Float(1), Max: engine.Float(64 << 20), Help: "Answers larger than this many bytes fail."},
			{Name: "backoffMax", Label: "Longest retry pause", Kind: engine.KindDuration, Default: "1m", Min: engine.Float(0), Help: "When polling fails, the pause doubles from interval up to this.", Advanced: true},
			{Name: "insecure", Identity: true, Label: "Skip TLS verification", Kind: engine.KindBool, Default: false, Help: "Do not verify the server's certificate. Only for lab set-ups.", Advanced: true},
		},
		New: engine.Construct(newRequest),
	})
}

type headerRow struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type requestConfig struct {
	URL        string          `json:"url"`
	Method     string          `json:"method"`
	Interval   engine.Duration `json:"interval"`
	Headers    []headerRow     `json:"headers"`
	AuthHeader string          `json:"authHeader"`
	AuthValue  string          `json:"authValue"`
	Format     string          `json:"format"`
	Device     string          `json:"device"`
	DeviceType string          `json:"deviceType"`
	Timeout    engine.Duration `json:"timeout"`
	MaxBytes   int64           `json:"maxBytes"`
	BackoffMax engine.Duration `json:"backoffMax"`
	Insecure   bool            `json:"insecure"`
}

// Validate checks the URL and the headers.
func (c *requestConfig) Validate() error {
	var errs []error
	t, err := msgfield.ParseTemplate(c.URL)
	if err != nil {
		errs = append(errs, &engine.FieldError{Field: "url", Message: err.Error()})
	} else {
		probe := c.URL
		if !t.Static() {
			probe = strings.NewReplacer("{{", "x", "}}", "x").Replace(c.URL)
		}
		u, err := url.Parse(probe)
		switch {
		case err != nil:
			errs = append(errs, &engine.FieldError{Field: "url", Message: err.Error()})
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, &engine.FieldError{Field: "url", Message: fmt.Sprintf("%q is not an http:// or https:// URL", c.URL)})
		case u.Host == "":
			errs = append(errs, &engine.FieldError{Field: "url", Message: "the URL has no host"})
		}
		if !t.Static() && c.Interval > 0 {
			errs = append(errs, &engine.FieldError{Field: "url", Message: "a polled URL cannot take {{…}} values from a message"})
		}
	}
	for i, h := range c.Headers {
		if !validHeaderName(h.Name) {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("headers[%d].name", i), Message: fmt.Sprintf("%q is not a header name", h.Name)})
		}
		if strings.ContainsAny(h.Value, "\r\n") {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("headers[%d].value", i), Message: "a header value cannot hold a line break"})
		}
	}
	if c.AuthValue != "" && !validHeaderName(c.AuthHeader) {
		errs = append(errs, &engine.FieldError{Field: "authHeader", Message: fmt.Sprintf("%q is not a header name", c.AuthHeader)})
	}
	if strings.ContainsAny(c.AuthValue, "\r\n") {
		errs = append(errs, &engine.FieldError{Field: "authValue", Message: "a header value cannot hold a line break"})
	}
	return errors.Join(errs...)
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

type requestNode struct {
	nc     *engine.NodeContext
	conf   *requestConfig
	url    msgfield.Template
	client *nethttp.Client

	mu     sync.Mutex
	failed bool
}

func newRequest(nc *engine.NodeContext, c *requestConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t, _ := msgfield.ParseTemplate(c.URL)
	tr := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	tr.Proxy = nil // a site's REST APIs are local; no proxy from the environment
	if c.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only when set explicitly
	}
	tr.MaxResponseHeaderBytes = 64 << 10
	return &requestNode{nc: nc, conf: c, url: t, client: &nethttp.Client{Transport: tr, Timeout: c.Timeout.D()}}, nil
}

func (n *requestNode) Start(context.Context) error { return nil }

func (n *requestNode) Stop(context.Context) error {
	n.client.CloseIdleConnections()
	return nil
}

// errUnreachable marks a server that could not be reached.
var errUnreachable = errors.New("server unreachable")

// call makes one request; m is the message it is for (nil when polling).
func (n *requestNode) call(ctx context.Context, m *engine.Msg) (*engine.Msg, error) {
	target, err := n.url.Expand(m, "URL", url.PathEscape)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if m != nil && (n.conf.Method == "POST" || n.conf.Method == "PUT" || n.conf.Method == "PATCH") {
		var b []byte
		if s, ok := m.Payload.(string); ok {
			b = []byte(s)
		} else if b, err = json.Marshal(m.Payload); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := nethttp.NewRequestWithContext(ctx, n.conf.Method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tbflow")
	for _, h := range n.conf.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	if n.conf.AuthValue != "" {
		req.Header.Set(n.conf.AuthHeader, n.conf.AuthValue)
	}
	start := time.Now()
	res, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the whole URL, query keys included
		}
		var ne net.Error
		if ctx.Err() == nil && (errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, fmt.Errorf("%w: %s %s: %w", errUnreachable, n.conf.Method, redact(target), err)
		}
		return nil, fmt.Errorf("%s %s: %w", n.conf.Method, redact(target), err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, n.conf.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", errUnreachable, err)
	}
	if int64(len(raw)) > n.conf.MaxBytes {
		return nil, fmt.Errorf("%s %s: answer over %d bytes", n.conf.Method, redact(target), n.conf.MaxBytes)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		snippet := strings.ToValidUTF8(string(raw[:min(len(raw), 200)]), "?")
		return nil, fmt.Errorf("%s %s: HTTP %d %s", n.conf.Method, redact(target), res.StatusCode, strings.TrimSpace(snippet))
	}
	var payload any
	switch n.conf.Format {
	case "text":
		payload = strings.ToValidUTF8(string(raw), "?")
	case "json":
		if err := tb.UnmarshalExact(raw, &payload); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not JSON: %w", n.conf.Method, redact(target), err)
		}
	default:
		if tb.UnmarshalExact(raw, &payload) != nil {
			payload = strings.ToValidUTF8(string(raw), "?")
		}
	}
	out := m
	if out == nil {
		out = engine.NewMsg(nil)
		out.Topic = redact(target)
	}
	out.Payload = payload
	out.Set("statusCode", int64(res.StatusCode))
	out.Set("ts", time.Now().UnixMilli())
	out.Set("http", map[string]any{"status": int64(res.StatusCode), "url": redact(target),
		"latencyMs": float64(time.Since(start).Microseconds()) / 1000, "contentType": res.Header.Get("Content-Type")})
	if n.conf.Device != "" {
		out.Set("device", n.conf.Device)
	}
	if n.conf.DeviceType != "" {
		out.Set("deviceType", n.conf.DeviceType)
	}
	return out, nil
}

// redact drops user info and the query (which may carry keys) from a URL
// for messages and errors.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}

// Handle calls the URL for one message.
func (n *requestNode) Handle(ctx context.Context, m *engine.Msg) error {
	out, err := n.call(ctx, m)
	if err != nil {
		n.nc.ShowStatus(engine.StatusError(err))
		if errors.Is(err, errUnreachable) {
			return fmt.Errorf("http-request: %w: %w", engine.ErrNotConnected, err)
		}
		return fmt.Errorf("http-request: %w", err)
	}
	n.nc.ShowStatus(engine.Status{Fill: "green", Shape: "dot", Text: "ok"})
	return n.nc.Send(ctx, out)
}

// Run polls every interval, pausing longer after failures.
func (n *requestNode) Run(ctx context.Context) error {
	if n.conf.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	interval := n.conf.Interval.D()
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		out, err := n.call(ctx, nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			n.mu.Lock()
			first := !n.failed
			n.failed = true
			n.mu.Unlock()
			n.nc.ShowStatus(engine.StatusError(err))
			if first {
				n.nc.Error(fmt.Errorf("http-request: %w", err), nil)
			}
			if wait < interval {
				wait = interval
			} else {
				wait = min(wait*2, max(n.conf.BackoffMax.D(), interval))
			}
			continue
		}
		n.mu.Lock()
		if n.failed {
			n.nc.Logger().Info("http-request answers again", "url", out.Topic)
		}
		n.failed = false
		n.mu.Unlock()
		n.nc.ShowStatus(engine.Status{Fill: "green", Shape: "dot", Text: "polling"})
		wait = interval
		if err := n.nc.Send(ctx, out); err != nil {
			return nil
		}
	}
}

var (
	_ engine.Handler = (*requestNode)(nil)
	_ engine.Runner  = (*requestNode)(nil)
)
