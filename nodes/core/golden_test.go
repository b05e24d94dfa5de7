package core_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
)

// TestGolden walks testdata/golden/<case>/: flow.json is deployed,
// input.json lists messages to deliver ({"to": node id, "msg": {...}}), and
// expected.json maps each debug node id to the values it must publish, in
// order ("_msgid" is ignored).
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			flow := readFile(t, filepath.Join(dir, "flow.json"))
			var inputs []struct {
				To  string     `json:"to"`
				Msg engine.Msg `json:"msg"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, "input.json")), &inputs); err != nil {
				t.Fatalf("input.json: %v", err)
			}
			var want map[string][]any
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, "expected.json")), &want); err != nil {
				t.Fatalf("expected.json: %v", err)
			}
			total := 0
			for _, vs := range want {
				total += len(vs)
			}
			h := enginetest.New(t, enginetest.Options{})
			h.Deploy(flow, engine.DeployFull)
			for _, in := range inputs {
				m := in.Msg
				h.Send(in.To, &m)
			}
			h.WaitEvents(engine.TopicDebug, total)
			h.WaitIdle()
			got := map[string][]any{}
			for id, vs := range h.Debug() {
				for _, v := range vs {
					got[id] = append(got[id], normalise(t, v))
				}
			}
			if !reflect.DeepEqual(got, normaliseAll(t, want)) {
				g, _ := json.MarshalIndent(got, "", "  ")
				t.Fatalf("debug output:\n%s\nwant the contents of %s", g, filepath.Join(dir, "expected.json"))
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalise turns a value into plain JSON values without "_msgid".
func normalise(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %v: %v", v, err)
	}
	var out any
	json.Unmarshal(b, &out)
	if m, ok := out.(map[string]any); ok {
		delete(m, "_msgid")
	}
	return out
}

func normaliseAll(t *testing.T, in map[string][]any) map[string][]any {
	out := map[string][]any{}
	for k, vs := range in {
		for _, v := range vs {
			out[k] = append(out[k], normalise(t, v))
		}
	}
	return out
}
