package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

type remoteConfig struct {
	Host   string   `json:"host"`
	Port   int      `json:"port"`
	TLS    bool     `json:"tls"`
	Token  string   `json:"token"`
	Every  Duration `json:"every"`
	Outbox string   `json:"outbox"`
}

// Validate echoes the host, as a careless node type might.
func (c *remoteConfig) Validate() error {
	if strings.HasPrefix(c.Host, "bad") {
		return &FieldError{Field: "host", Message: "cannot use host " + c.Host}
	}
	return nil
}

type remoteNode struct {
	passNode
	conf *remoteConfig
}

func secureRegistry(t testing.TB) *Registry {
	reg, _ := newTestRegistry(t)
	reg.Register(Type{Name: "remote", ConfigNode: true, Help: "A server connection.",
		Fields: []Field{
			{Name: "host", Kind: KindString, Default: "127.0.0.1", Identity: true, Help: "Host."},
			{Name: "port", Kind: KindInt, Default: 0, Identity: true, Help: "Port."},
			{Name: "tls", Kind: KindBool, Default: false, Identity: true, Help: "TLS."},
			{Name: "token", Kind: KindSecret, Help: "Token."},
			{Name: "every", Kind: KindDuration, Default: "1s", Help: "Interval."},
			{Name: "outbox", Kind: KindString, DataPath: true, Help: "Outbox file."},
		},
		New: Construct(func(nc *NodeContext, c *remoteConfig) (Node, error) {
			if c.Token == "explode" {
				return nil, errors.New("server refused token " + c.Token)
			}
			return &remoteNode{conf: c}, nil
		})})
	return reg
}

// TestProblemsNameEnvReferencesNotValues: a value that came from ${NAME}
// (or a secret field) never appears in a problem or an error.
func TestProblemsNameEnvReferencesNotValues(t *testing.T) {
	reg := secureRegistry(t)
	env := map[string]string{
		"EVERY":                     "cli-secret-777",
		"HOST":                      "bad-host-secret-888",
		"TBFLOW_AUTH_PASSWORD_HASH": "$2a$10$abcdefghijklmnopqrstuv",
		"NUM":                       "secretish-999",
	}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	f := mustParse(t, `[
	 {"id":"a","type":"remote","every":"${EVERY}","port":"${NUM}"},
	 {"id":"c","type":"remote","host":"${HOST}"},
	 {"id":"b","type":"remote","every":"${TBFLOW_AUTH_PASSWORD_HASH}","token":"my-literal-token-123","port":"x my-literal-token-123"}
	]`)
	ps := reg.Validate(f, lookup)
	all := ""
	for _, p := range ps {
		all += p.String() + "\n"
	}
	for _, secret := range []string{"cli-secret-777", "bad-host-secret-888", "$2a$10$", "secretish-999", "my-literal-token-123"} {
		if strings.Contains(all, secret) {
			t.Errorf("problems show %q:\n%s", secret, all)
		}
	}
	for _, ref := range []string{"${EVERY}", "${HOST}", `reserved for the editor's own credentials`} {
		if !strings.Contains(all, ref) {
			t.Errorf("problems do not name %s:\n%s", ref, all)
		}
	}
	// Deploy errors, constructor errors included, are redacted too.
	e := newTestEngine(t, reg, Options{LookupEnv: func(n string) (string, bool) {
		if n == "TOK" {
			return "explode", true
		}
		return lookup(n)
	}})
	for _, flow := range []string{
		`[{"id":"a","type":"remote","every":"${EVERY}"}]`,
		`[{"id":"a","type":"remote","token":"${TOK}","host":"h"}]`,
	} {
		_, err := e.Deploy(context.Background(), mustParse(t, flow), "", DeployFull)
		if err == nil {
			t.Fatalf("%s deployed", flow)
		}
		if strings.Contains(err.Error(), "cli-secret-777") || strings.Contains(err.Error(), "explode") {
			t.Errorf("deploy error shows a value: %v", err)
		}
	}
}

// TestRetargetNeedsSecretsAgain: a deploy that points a connection with a
// stored token at another server, without entering the token again, is
// refused; entering it again (or keeping the server) deploys.
func TestRetargetNeedsSecretsAgain(t *testing.T) {
	reg := secureRegistry(t)
	e := newTestEngine(t, reg, Options{})
	deploy(t, e, `[{"id":"c","type":"remote","host":"tb.example.com","token":"s3cret-token"}]`, DeployFull)
	for _, flow := range []string{
		`[{"id":"c","type":"remote","host":"evil.example","token":"__SECRET__"}]`,
		`[{"id":"c","type":"remote","host":"evil.example"}]`,
		`[{"id":"c","type":"remote","host":"tb.example.com","port":1884,"token":"__SECRET__"}]`,
		`[{"id":"c","type":"remote","host":"tb.example.com","tls":true}]`,
	} {
		f := mustParse(t, flow)
		ps := e.Validate(f)
		_, err := e.Deploy(context.Background(), f, "", DeployModified)
		if err == nil || !strings.Contains(err.Error(), "re-enter the token: the server changed") {
			t.Errorf("%s: deploy %v", flow, err)
		}
		if !strings.Contains(Problems(ps).Errors().Err().Error(), "re-enter the token") {
			t.Errorf("%s: validate %v", flow, ps)
		}
	}
	// Same server with the placeholder, or a new server with the token
	// entered again: fine.
	deploy(t, e, `[{"id":"c","type":"remote","host":"tb.example.com","every":"2s","token":"__SECRET__"}]`, DeployModified)
	deploy(t, e, `[{"id":"c","type":"remote","host":"other.example","token":"new-token"}]`, DeployModified)
	f, _ := e.Flows()
	if f.Nodes[0].Fields["host"] != "other.example" {
		t.Fatalf("deployed %v", f.Nodes[0].Fields)
	}
}

// TestDataPathStaysInDataDir: data paths resolve in the data directory and
// cannot leave it.
func TestDataPathStaysInDataDir(t *testing.T) {
	reg := secureRegistry(t)
	dir := t.TempDir()
	e := newTestEngine(t, reg, Options{DataDir: dir})
	for _, bad := range []string{"../x.db", "a/../../x.db", "/etc/passwd", filepath.Dir(dir) + "/x.db", "."} {
		f := mustParse(t, `[{"id":"c","type":"remote","outbox":"`+bad+`"}]`)
		if ps := e.Validate(f); !ps.HasErrors() {
			t.Errorf("outbox %q accepted", bad)
		}
	}
	if ps := reg.Validate(mustParse(t, `[{"id":"c","type":"remote","outbox":"../x.db"}]`), nil); !ps.HasErrors() {
		t.Error("traversal accepted without a data directory")
	}
	nodes, err := e.Construct(mustParse(t, `[{"id":"c","type":"remote","outbox":"site/outbox.db"},{"id":"d","type":"remote","outbox":"`+dir+`/o.db"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if got := nodes["c"].(*remoteNode).conf.Outbox; got != filepath.Join(dir, "site/outbox.db") {
		t.Errorf("relative outbox resolved to %q", got)
	}
	if got := nodes["d"].(*remoteNode).conf.Outbox; got != filepath.Join(dir, "o.db") {
		t.Errorf("absolute outbox inside the data dir: %q", got)
	}
	for _, n := range nodes {
		n.Stop(context.Background())
	}
}
