package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// A Node-RED export: no tab object (an exported selection), Node-RED's own
// field values, a function node, links, a group and a node tbflow lacks.
const nodeREDExport = `[
 {"id":"g1","type":"group","z":"tab1","name":"sub","style":{"label":true},"nodes":["li","ch","ex"],"x":10,"y":10,"w":300,"h":100},
 {"id":"in","type":"inject","z":"tab1","props":[{"p":"payload"}],"repeat":"","crontab":"","once":true,"onceDelay":0.1,"topic":"","payload":"21","payloadType":"num","x":100,"y":40,"wires":[["fn"]]},
 {"id":"fn","type":"function","z":"tab1","name":"double","func":"msg.payload = msg.payload * 2;\nreturn msg;","outputs":1,"timeout":0,"noerr":0,"initialize":"","finalize":"","libs":[],"x":300,"y":40,"wires":[["lo"]]},
 {"id":"lo","type":"link out","z":"tab1","name":"","mode":"link","links":["li"],"x":400,"y":40,"wires":[]},
 {"id":"li","type":"link in","z":"tab1","g":"g1","name":"","links":["lo"],"x":100,"y":120,"wires":[["ch"]]},
 {"id":"ch","type":"change","z":"tab1","g":"g1","name":"","rules":[{"t":"set","p":"topic","pt":"msg","to":"doubled","tot":"str"}],"action":"","property":"","from":"","to":"","reg":false,"x":250,"y":120,"wires":[["dbg","ex"]]},
 {"id":"ex","type":"exec","z":"tab1","g":"g1","command":"ls","x":400,"y":160,"wires":[[],[],[]]},
 {"id":"dbg","type":"debug","z":"tab1","name":"","active":true,"tosidebar":true,"console":true,"tostatus":false,"complete":"true","targetType":"full","x":450,"y":120,"wires":[]}
]`

func TestImportNodeREDCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "export.json")
	os.WriteFile(in, []byte(nodeREDExport), 0o644)
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"import", "nodered", in}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	report := out.String()
	for _, want := range []string{"wrote " + filepath.Join(dir, "export.tbflow.json"), `not converted: 1 "exec" node(s) (runs operating-system commands; tbflow does not run programs): ex`, "imported 8 object(s)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "export.tbflow.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.ParseFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Node("tab1") == nil || f.Node("tab1").Type != "tab" || f.Node("li").Type != "link-in" || f.Node("lo").Fields["links"].([]any)[0] != "li" {
		t.Fatalf("converted flow: %s", data)
	}
	if g := f.Node("g1"); g == nil || len(g.Fields["nodes"].([]any)) != 2 || f.Node("ch").G != "g1" {
		t.Fatalf("group lost its members: %s", data)
	}
	// Refuses to overwrite.
	if code := runMain(context.Background(), []string{"import", "nodered", in}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists") {
		t.Fatalf("second import: exit %d, %s", code, errb.String())
	}
}

func TestValidateAndRunConvertANodeREDFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "export.json")
	// exec is dropped by the conversion; the rest runs.
	os.WriteFile(in, []byte(nodeREDExport), 0o644)
	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"validate", in}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "is a Node-RED export: converted in memory (run `tbflow import nodered") {
		t.Fatalf("validate: exit %d\n%s%s", code, out.String(), errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"run", "-log-format", "json", in}, &out, logs) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `\"topic\":\"doubled\",\"payload\":42`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no debug output of the converted flow:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if c := <-done; c != 0 {
		t.Fatalf("run exit %d\n%s", c, logs.String())
	}
}

func TestExportNodeREDCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "f.json")
	os.WriteFile(in, []byte(`[{"id":"t","type":"tab","label":"x"},
	 {"id":"i","type":"inject","z":"t","payloadType":"number","payload":"5","interval":"2s","x":1,"y":1,"wires":[["tr"]]},
	 {"id":"tr","type":"transform","z":"t","expression":"payload * 2","x":2,"y":1,"wires":[["lo"]]},
	 {"id":"lo","type":"link-out","z":"t","links":[],"x":3,"y":1}]`), 0o644)
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"export", "nodered", in}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	f, err := engine.ParseFlow(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Node("i"); n.Fields["payloadType"] != "num" || n.Fields["repeat"] != "2" {
		t.Errorf("inject = %v", n.Fields)
	}
	if f.Node("lo").Type != "link out" || f.Node("tr").Type != "transform" {
		t.Errorf("types: %s", out.String())
	}
	if !strings.Contains(errb.String(), "tbflow only (Node-RED will list it as a missing type): transform (1)") {
		t.Errorf("report: %s", errb.String())
	}
}
