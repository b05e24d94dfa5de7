package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
)

// TestNodeReferenceUpToDate: docs/nodes.md is what `tbflow nodes` prints, so
// the node reference in the docs never drifts from the specs. Regenerate it
// with `go run ./cmd/tbflow nodes > docs/nodes.md`.
func TestNodeReferenceUpToDate(t *testing.T) {
	var out bytes.Buffer
	if code := runNodes(context.Background(), nil, &out, io.Discard); code != 0 {
		t.Fatalf("tbflow nodes: exit %d", code)
	}
	doc, err := os.ReadFile("../../docs/nodes.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, out.Bytes()) {
		t.Fatal("docs/nodes.md is out of date with the node specs: run `go run ./cmd/tbflow nodes > docs/nodes.md`")
	}
}
