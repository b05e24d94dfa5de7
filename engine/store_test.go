package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileStoreKeepsSecretsOutOfTheFlowFile(t *testing.T) {
	reg, te := newTestRegistry(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "site.json")
	st := &FileStore{Path: path, Registry: reg}
	f := mustParse(t, `[
	 {"id":"c1","type":"conn","host":"h","token":"A1B2C3"},
	 {"id":"c2","type":"conn","host":"h","token":"${TB_TOKEN}"},
	 {"id":"u","type":"user","connection":"c1"}
	]`)
	if err := st.Save(f); err != nil {
		t.Fatal(err)
	}
	flowText, _ := os.ReadFile(path)
	if strings.Contains(string(flowText), "A1B2C3") {
		t.Fatalf("flow file holds the secret:\n%s", flowText)
	}
	if !strings.Contains(string(flowText), "${TB_TOKEN}") {
		t.Fatalf("flow file lost the env reference:\n%s", flowText)
	}
	info, err := os.Stat(st.CredentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || filepath.Base(st.CredentialsPath()) != "site_cred.json" {
		t.Fatalf("credentials file %s has mode %v", st.CredentialsPath(), info.Mode().Perm())
	}
	back, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if back.Node("c1").Fields["token"] != "A1B2C3" || back.Revision() != f.Revision() {
		t.Fatalf("loaded flow lost the secret: %+v", back.Node("c1").Fields)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("directory holds %d files (temporary files left?)", len(entries))
	}

	// exports and the browser never see the value
	exp, _ := Export(f, reg).MarshalJSON()
	if strings.Contains(string(exp), "A1B2C3") {
		t.Fatal("export holds the secret")
	}
	red := Redact(f, reg)
	if red.Node("c1").Fields["token"] != SecretPlaceholder || red.Node("c2").Fields["token"] != "${TB_TOKEN}" {
		t.Fatalf("redacted = %+v %+v", red.Node("c1").Fields, red.Node("c2").Fields)
	}

	// a deploy from the browser sends the placeholder back and keeps the value
	e := newTestEngine(t, reg, Options{Store: st, LookupEnv: func(string) (string, bool) { return "tok", true }})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	browser, rev := e.Flows()
	browser.Node("u").Name = "renamed"
	if _, err := e.Deploy(context.Background(), browser, rev, DeployModified); err != nil {
		t.Fatal(err)
	}
	if got := te.users["u"].conn.conf.Token; got != "A1B2C3" {
		t.Fatalf("token after a browser deploy = %q", got)
	}
	again, _ := st.Load()
	if again.Node("u").Name != "renamed" || again.Node("c1").Fields["token"] != "A1B2C3" {
		t.Fatal("saved flow lost the change or the secret")
	}

	// an exported flow (the secret absent) keeps it too; "" clears it
	exported := Export(again, reg)
	exported.Node("u").Name = "exported"
	if _, err := e.Deploy(context.Background(), exported, "", DeployModified); err != nil {
		t.Fatal(err)
	}
	if got := te.users["u"].conn.conf.Token; got != "A1B2C3" {
		t.Fatalf("token after deploying an export = %q", got)
	}
	cleared, rev := e.Flows()
	cleared.Node("c1").Fields["token"] = ""
	if _, err := e.Deploy(context.Background(), cleared, rev, DeployModified); err != nil {
		t.Fatal(err)
	}
	if got := te.users["u"].conn.conf.Token; got != "" {
		t.Fatalf("token after clearing = %q", got)
	}
	if cr, _ := os.ReadFile(st.CredentialsPath()); strings.Contains(string(cr), "A1B2C3") {
		t.Fatalf("the credentials file still holds the cleared secret: %s", cr)
	}
}

func TestFileStoreMissingAndBroken(t *testing.T) {
	dir := t.TempDir()
	st := &FileStore{Path: filepath.Join(dir, "none.json")}
	f, err := st.Load()
	if err != nil || len(f.Nodes) != 0 {
		t.Fatalf("missing file: %v %v", f, err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("[\n{\"id\": }\n]"), 0o644)
	_, err = (&FileStore{Path: bad}).Load()
	ps := ProblemsFromError(err)
	if len(ps) != 1 || ps[0].Line != 2 || ps[0].String() == "" {
		t.Fatalf("problems = %+v", ps)
	}
}

func TestEnvReferencesResolveAtDeploy(t *testing.T) {
	reg, te := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{LookupEnv: func(n string) (string, bool) {
		return map[string]string{"HOST": "10.0.0.7", "N": "4"}[n], n == "HOST" || n == "N"
	}})
	deploy(t, e, `[{"id":"c","type":"conn","host":"tcp://${HOST}:1883"},{"id":"u","type":"user","connection":"c","n":"${N}"}]`, DeployFull)
	if h := te.users["u"].conn.conf.Host; h != "tcp://10.0.0.7:1883" {
		t.Fatalf("host = %q", h)
	}
}
