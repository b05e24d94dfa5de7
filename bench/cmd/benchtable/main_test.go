package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseAndPrint(t *testing.T) {
	in := `goos: linux
pkg: github.com/tbflow/tbflow/engine
BenchmarkChain/nodes=1-2   	 1000	       208.8 ns/op	       104.4 ns/hop	        51.70 chan-ns/hop	         2.019 x-chan-time	       0 B/op	       0 allocs/op
pkg: github.com/tbflow/tbflow/bench
BenchmarkTelemetry/qos0-2  	20000	        22.00 allocs/publish	    138482 msgs/s	    184299 paho-msgs/s	         0.7514 x-paho-rate	 0 ns/op	 6875 B/op	126 allocs/op
BenchmarkModbusPoll-2      	    1	         0.2720 cycle-ms	        15.30 naive-cycle-ms	       100.0 x-fewer-requests	 0 ns/op
BenchmarkFlowTelemetryVsNodeRED-2 	1	 3.2 cpu-µs/record	 0 lost	 44.4 nodered-cpu-µs/record	 7418 nodered-records/s	 230675 records/s	 13.88 x-less-cpu-than-nodered	 31.10 x-nodered-rate	 0 ns/op
not a benchmark line
BenchmarkBroken-2 x y
ok  	github.com/tbflow/tbflow/bench	33.591s
`
	res := parse(strings.NewReader(in))
	if len(res) != 4 {
		t.Fatalf("parsed %d results, want 4: %+v", len(res), res)
	}
	if res[0].Package != "github.com/tbflow/tbflow/engine" || res[0].Name != "Chain/nodes=1-2" || res[0].N != 1000 || res[0].Metrics["x-chan-time"] != 2.019 {
		t.Fatalf("first result %+v", res[0])
	}
	var b bytes.Buffer
	print(&b, res)
	out := b.String()
	for _, want := range []string{
		"| engine Chain/nodes=1-2 | 104.4 ns/hop, 208.8 ns/op, 0 allocs/op, 0 B/op | 51.7 chan-ns/hop | 2.02× a channel hop's time |",
		"| bench Telemetry/qos0-2 | 138482 msgs/s, 22.0 allocs/publish | 184299 paho-msgs/s | 0.751× raw paho's rate |",
		"| bench ModbusPoll-2 | 0.272 cycle-ms | 15.3 naive-cycle-ms | 100.0× fewer requests |",
		"| bench FlowTelemetryVsNodeRED-2 | 230675 records/s, 3.2 cpu-µs/record, 0 lost | 44.4 nodered-cpu-µs/record, 7418 nodered-records/s | 13.9× less CPU per record than Node-RED, 31.1× Node-RED's records/s |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
