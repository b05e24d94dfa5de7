package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[
	 {"id":"a","type":"inject","interval":"soon","wires":[["ghost"]]},
	 {"id":"b","type":"transform","expression":"payload *","wires":[[]]},
	 {"id":"c","type":"nope"}
	]`), 0o644)
	syntax := filepath.Join(dir, "syntax.json")
	os.WriteFile(syntax, []byte("[\n {\"id\":\"a\",,}\n]"), 0o644)
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"validate", bad, syntax, "../../flows/core-example.json"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	want := []string{
		bad + `: node "a" (inject) interval: invalid duration "soon"`,
		bad + `: node "a" (inject) wires: output 1 is wired to "ghost", which does not exist`,
		bad + `: node "b" (transform) expression: expression does not compile: line 1, column 9`,
		bad + `: node "c" (nope) type: unknown node type "nope"`,
		syntax + `: line 2, column 12: invalid character ','`,
		"../../flows/core-example.json: ok",
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"validate", "-json", bad}, &out, &errOut); code != 1 {
		t.Fatalf("-json exit code %d", code)
	}
	var ps []map[string]any
	if err := json.Unmarshal(out.Bytes(), &ps); err != nil || len(ps) != 4 || ps[0]["id"] != "a" || ps[0]["field"] != "interval" {
		t.Fatalf("-json output %s (%v)", out.String(), err)
	}
	if code := runMain(context.Background(), []string{"validate", "-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "usage: tbflow validate") {
		t.Fatalf("-h: %d %s", code, errOut.String())
	}
}

func TestNodesCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"nodes"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, w := range []string{"# Node reference", "### `inject`", "### `transform`", "| `rules[].condition` | expr |"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("Markdown lacks %q", w)
		}
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"nodes", "--schema"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var schema map[string]any
	if err := json.Unmarshal(out.Bytes(), &schema); err != nil || schema["type"] != "array" {
		t.Fatalf("schema: %v", err)
	}
	defs := schema["$defs"].(map[string]any)
	if _, ok := defs["switch"]; !ok {
		t.Fatal("schema has no switch")
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"nodes", "--json", "switch"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var specs []map[string]any
	if err := json.Unmarshal(out.Bytes(), &specs); err != nil || len(specs) != 1 || specs[0]["outputsField"] != "rules" {
		t.Fatalf("specs: %s %v", out.String(), err)
	}
	if code := runMain(context.Background(), []string{"nodes", "nope"}, &out, &errOut); code != 1 {
		t.Fatalf("unknown type: exit %d", code)
	}
}

func TestRunCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"run"}, &out, &errOut); code != 2 {
		t.Fatalf("no file: exit %d", code)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":"a","type":"nope"}]`), 0o644)
	if code := runMain(context.Background(), []string{"run", bad}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `node "a" (nope) type: unknown node type`) {
		t.Fatalf("invalid flow: exit %d: %s", code, errOut.String())
	}

	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`[
	 {"id":"i","type":"inject","payloadType":"string","payload":"hello","once":true,"onceDelay":"0s","wires":[["d"]]},
	 {"id":"d","type":"debug","console":true,"wires":[]}
	]`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	done := make(chan int)
	go func() { done <- runMain(ctx, []string{"run", "-log-format", "json", good}, &out, logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `"value":"\"hello\""`) {
		if time.Now().After(deadline) {
			t.Fatalf("no debug output in the log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // what SIGINT/SIGTERM do through main's context
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"flow stopped"`) {
		t.Fatalf("no graceful stop in the log:\n%s", logs.String())
	}
}
