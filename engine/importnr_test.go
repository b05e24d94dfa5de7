package engine

import (
	"fmt"
	"strings"
	"testing"
)

func TestImportNodeRED(t *testing.T) {
	reg, _ := newTestRegistry(t)
	reg.RegisterImport("mqtt-broker", func(in map[string]any) (string, map[string]any, []string, error) {
		return "conn", map[string]any{"host": fmt.Sprint(in["broker"])}, []string{"port dropped"}, nil
	})
	reg.RegisterImport("link in", func(map[string]any) (string, map[string]any, []string, error) {
		return "", nil, nil, fmt.Errorf("links are not supported")
	})
	export := `[
	 {"id":"t1","type":"tab","label":"Flow 1","disabled":false,"info":""},
	 {"id":"b","type":"mqtt-broker","name":"","broker":"localhost","port":"1883"},
	 {"id":"i","type":"src","z":"t1","x":100,"y":80,"wires":[["f","k"]]},
	 {"id":"f","type":"function","z":"t1","func":"return msg;","outputs":1,"x":300,"y":80,"wires":[["k"]]},
	 {"id":"m","type":"mqtt in","z":"t1","topic":"x","broker":"b","x":100,"y":160,"wires":[["k"]]},
	 {"id":"l","type":"link in","z":"t1","wires":[["k"]]},
	 {"id":"k","type":"sink","z":"t1","x":500,"y":80,"wires":[]}
	]`
	f, rep, err := reg.ImportNodeRED([]byte(export))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.UnsupportedTypes(), ","); got != "function,link in,mqtt in" {
		t.Fatalf("unsupported = %q", got)
	}
	if rep.Imported != 4 || len(rep.Notes) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	if f.Node("b").Type != "conn" || f.Node("b").Fields["host"] != "localhost" {
		t.Fatalf("broker became %+v", f.Node("b"))
	}
	if w := f.Node("i").Wires; len(w) != 1 || strings.Join(w[0], ",") != "k" {
		t.Fatalf("wires of i = %v, want only k", w)
	}
	if *f.Node("i").X != 100 || f.Node("i").Z != "t1" {
		t.Fatal("position or tab lost")
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("imported flow does not validate: %v", ps.Err())
	}
}
