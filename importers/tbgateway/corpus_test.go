package tbgateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/importers/tbgateway"
	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/modbus/modbustest"
	_ "github.com/tbflow/tbflow/nodes/core"
	_ "github.com/tbflow/tbflow/nodes/modbus"
	_ "github.com/tbflow/tbflow/nodes/thingsboard"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// corpus returns the IoT Gateway's own Modbus test data, kept beside the
// project (never in it): ../shared/corpus/tbgw-modbus from the repository
// root.
func corpus(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "tbgw-modbus")
	if _, err := os.Stat(filepath.Join(dir, "configs")); err != nil {
		msg := "the IoT Gateway corpus is absent (want ../shared/corpus/tbgw-modbus beside the checkout, from thingsboard/thingsboard-gateway tests/blackbox/data/modbus): " + err.Error()
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type gwEntry struct {
	Tag          string `json:"tag"`
	Type         string `json:"type"`
	FunctionCode int    `json:"functionCode"`
	ObjectsCount int    `json:"objectsCount"`
	Address      any    `json:"address"`
}

func slaveOf(t *testing.T, path string) map[string]any {
	t.Helper()
	var doc struct {
		Modbus struct {
			ConfigurationJSON struct {
				Master struct {
					Slaves []map[string]any `json:"slaves"`
				} `json:"master"`
			} `json:"configurationJson"`
		} `json:"Modbus"`
	}
	readJSON(t, path, &doc)
	return doc.Modbus.ConfigurationJSON.Master.Slaves[0]
}

func entries(t *testing.T, sl map[string]any, section string) []gwEntry {
	b, _ := json.Marshal(sl[section])
	var out []gwEntry
	_ = json.Unmarshal(b, &out)
	return out
}

// builderPy encodes the device's registers as the Gateway's test device
// holds them: every value of default_slave_values.json at its address,
// with pymodbus's own BinaryPayloadBuilder in the default LITTLE byte and
// word order (the inverse of the decoder the Gateway reads with).
const builderPy = `
enc = json.load(open(spec["builderData"]))
for e in enc["registers"]:
    b = BinaryPayloadBuilder(byteorder=Endian.Little, wordorder=Endian.Little)
    t, v = e["type"], e["value"]
    if t == "string": b.add_string(v)
    elif t == "bits": b.add_bits(v)
    elif t == "16int": b.add_16bit_int(v)
    elif t == "16uint": b.add_16bit_uint(v)
    elif t == "16float": b.add_16bit_float(v)
    elif t == "32int": b.add_32bit_int(v)
    elif t == "32uint": b.add_32bit_uint(v)
    elif t == "32float": b.add_32bit_float(v)
    elif t == "64int": b.add_64bit_int(v)
    elif t == "64uint": b.add_64bit_uint(v)
    elif t == "64float": b.add_64bit_float(v)
    regs = b.to_registers()
    for table in ("holding", "input"):
        tb = units[2].setdefault(table, [])
        tb.extend([0] * (e["address"] + len(regs) - len(tb)))
        tb[e["address"]:e["address"] + len(regs)] = regs
units[2]["coils"] = enc["coils"]
units[2]["discrete"] = enc["coils"]
`

// gwValue turns a value as the test files write it into what the builder
// takes.
func gwValue(typ, s string) any {
	switch typ {
	case "string":
		return s
	case "bits":
		var l []bool
		_ = json.Unmarshal([]byte(s), &l)
		return l
	case "16float", "32float", "64float":
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	n, _ := new(big.Int).SetString(s, 10)
	return json.Number(n.String())
}

// startDevice starts pymodbus holding the corpus's default slave values.
func startDevice(t *testing.T, dir string) *modbustest.Server {
	var values map[string]string
	readJSON(t, filepath.Join(dir, "test_values", "default_slave_values.json"), &values)
	sl := slaveOf(t, filepath.Join(dir, "configs", "uplink_configs", "modbus_uplink_converter_holding_registers_reading_little.json"))
	var regs []map[string]any
	for _, e := range entries(t, sl, "timeseries") {
		v, ok := values[e.Tag]
		if !ok {
			continue
		}
		a, _ := e.Address.(float64)
		regs = append(regs, map[string]any{"type": e.Type, "address": int(a), "value": gwValue(e.Type, v)})
	}
	// Coils as the Gateway reads them: each byte's eight coils listed from
	// the highest address down.
	var coilValues map[string]string
	readJSON(t, filepath.Join(dir, "test_values", "uplink", "discrete_and_coils_registers_values_little.json"), &coilValues)
	var l []bool
	_ = json.Unmarshal([]byte(coilValues["bits"]), &l)
	coils := make([]bool, len(l))
	for j := 0; j < len(l)/8; j++ {
		for k := range 8 {
			coils[8*j+k] = l[8*j+7-k]
		}
	}
	data, _ := json.Marshal(map[string]any{"registers": regs, "coils": coils})
	path := filepath.Join(t.TempDir(), "values.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{2: {}},
		Builder: "spec['builderData'] = " + strconv.Quote(path) + "\n" + builderPy})
}

// sameAsTB compares what tbsim stored (typed as ThingsBoard types JSON)
// with the text ThingsBoard showed the Gateway's value as.
func sameAsTB(want string, got any) bool {
	switch g := got.(type) {
	case bool:
		return strconv.FormatBool(g) == want
	case string:
		return g == want
	case int64:
		return strconv.FormatInt(g, 10) == want
	case float64:
		if !strings.ContainsAny(want, ".eE") && math.Abs(g) < 1e15 {
			return false // ThingsBoard showed an integer: the Gateway sent one
		}
		f, err := strconv.ParseFloat(want, 64)
		return err == nil && f == g
	case json.RawMessage:
		var a, b bytes.Buffer
		return json.Compact(&a, g) == nil && json.Compact(&b, []byte(want)) == nil && a.String() == b.String()
	}
	return fmt.Sprint(got) == want
}

func runConverted(t *testing.T, cfgPath string, dev *modbustest.Server) (*tbsim.Server, *enginetest.Harness) {
	t.Helper()
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "gw", Gateway: true, Token: "gw-token"}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(tbs.MQTTAddr())
	p, _ := strconv.Atoi(port)
	res, err := tbgateway.Convert(data, tbgateway.Options{TBHost: host, TBPort: p})
	if err != nil {
		t.Fatal(err)
	}
	mbHost, mbPort, _ := net.SplitHostPort(dev.Addr)
	mp, _ := strconv.Atoi(mbPort)
	for _, n := range res.Flow {
		switch n["type"] {
		case "modbus-connection":
			n["host"], n["port"] = mbHost, float64(mp)
		case "modbus-in":
			n["period"] = "100ms"
		}
	}
	doc, _ := json.Marshal(res.Flow)
	f, err := engine.ParseFlow(doc)
	if err != nil {
		t.Fatal(err)
	}
	env := func(name string) (string, bool) {
		if name == "TB_GATEWAY_TOKEN" {
			return "gw-token", true
		}
		return "", false
	}
	if ps := engine.DefaultRegistry().Validate(f, env); ps.HasErrors() {
		t.Fatalf("the converted flow does not validate: %v", ps)
	}
	h := enginetest.New(t, enginetest.Options{LookupEnv: env})
	h.DeployFlow(f, engine.DeployFull)
	return tbs, h
}

// TestCorpusUplink converts each of the Gateway's uplink test configs,
// runs the flow against pymodbus holding the registers the Gateway's test
// device holds, and checks that ThingsBoard gets the keys and values the
// Gateway's own tests expect.
func TestCorpusUplink(t *testing.T) {
	dir := corpus(t)
	dev := startDevice(t, dir)
	cases := map[string]string{
		"modbus_uplink_converter_holding_registers_reading_little.json": "holding_registers_values_little.json",
		"modbus_uplink_converter_holding_registers_reading_big.json":    "holding_registers_values_big.json",
		"modbus_uplink_converter_input_registers_reading_little.json":   "input_registers_values_little.json",
		"modbus_uplink_converter_input_registers_reading_big.json":      "input_registers_values_big.json",
		"modbus_uplink_converter_coils_reading_little.json":             "discrete_and_coils_registers_values_little.json",
		"modbus_uplink_converter_coils_reading_big.json":                "discrete_and_coils_registers_values_big.json",
		"modbus_uplink_converter_discrete_input_reading_little.json":    "discrete_and_coils_registers_values_little.json",
		"modbus_uplink_converter_discrete_input_reading_big.json":       "discrete_and_coils_registers_values_big.json",
	}
	for cfg, vals := range cases {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(cfg, "modbus_uplink_converter_"), ".json"), func(t *testing.T) {
			var want map[string]string
			readJSON(t, filepath.Join(dir, "test_values", "uplink", vals), &want)
			tbs, _ := runConverted(t, filepath.Join(dir, "configs", "uplink_configs", cfg), dev)
			checkTelemetry(t, tbs, "Temp Sensor", want)
		})
	}
}

func checkTelemetry(t *testing.T, tbs *tbsim.Server, device string, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
	defer cancel()
	for k := range want {
		if err := tbs.WaitTelemetry(ctx, device, k, 1); err != nil {
			t.Fatalf("no %q telemetry: %v (have %v)", k, err, tbs.Latest(device))
		}
	}
	latest := tbs.Latest(device)
	for k, w := range want {
		if got := latest[k].Value; !sameAsTB(w, got) {
			t.Errorf("%s: ThingsBoard got %#v (%T), the Gateway sends %s", k, got, got, w)
		}
	}
}

// TestCorpusAttributesAndReadRPC: the default config's attribute arrives
// as a client attribute, and the read RPCs of the Gateway's RPC test
// config answer {"result": {"value": …}} with the values its tests expect.
func TestCorpusAttributesAndReadRPC(t *testing.T) {
	dir := corpus(t)
	dev := startDevice(t, dir)
	t.Run("attributes", func(t *testing.T) {
		tbs, _ := runConverted(t, filepath.Join(dir, "configs", "default_modbus_config.json"), dev)
		deadline := time.Now().Add(enginetest.WaitLimit)
		for tbs.ClientAttributes("Temp Sensor")["string_read"] == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := tbs.ClientAttributes("Temp Sensor")["string_read"]; got != "abcd" {
			t.Errorf("string_read = %#v", got)
		}
	})
	for _, order := range []string{"little", "big"} {
		t.Run("rpc "+order, func(t *testing.T) {
			var want map[string]json.RawMessage
			readJSON(t, filepath.Join(dir, "test_values", "rpc", "holding_registers_values_reading_"+order+".json"), &want)
			tbs, _ := runConverted(t, filepath.Join(dir, "configs", "rpc_configs", "holding_registers_reading_rpc_"+order+".json"), dev)
			ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
			defer cancel()
			for !slices.Contains(tbs.SubDevices("gw"), "Temp Sensor") {
				if ctx.Err() != nil {
					t.Fatal("the gateway never connected Temp Sensor")
				}
				time.Sleep(10 * time.Millisecond)
			}
			for k, w := range want {
				reply, err := tbs.RPC(ctx, "Temp Sensor", k, nil, false)
				if err != nil {
					t.Fatalf("rpc %s: %v", k, err)
				}
				var got struct {
					Result struct {
						Value json.RawMessage `json:"value"`
					} `json:"result"`
				}
				if err := json.Unmarshal(reply, &got); err != nil || !sameJSONNumber(got.Result.Value, w) {
					t.Errorf("rpc %s: reply %s, the Gateway answers %s", k, reply, w)
				}
			}
		})
	}
}

// sameJSONNumber compares two JSON values, numbers by value.
func sameJSONNumber(a, b json.RawMessage) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	if nx, ok := x.(json.Number); ok {
		ny, ok := y.(json.Number)
		fx, e1 := strconv.ParseFloat(string(nx), 64)
		fy, e2 := strconv.ParseFloat(string(ny), 64)
		return ok && (nx == ny || e1 == nil && e2 == nil && fx == fy)
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// TestCorpusShippedExample: the Gateway's shipped modbus.json converts into
// a flow that validates, with its slave section served by modbus-server.
func TestCorpusShippedExample(t *testing.T) {
	dir := corpus(t)
	data, err := os.ReadFile(filepath.Join(dir, "thingsboard_gateway-config-modbus.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tbgateway.Convert(data, tbgateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(res.Flow)
	f, err := engine.ParseFlow(doc)
	if err != nil {
		t.Fatal(err)
	}
	if ps := engine.DefaultRegistry().Validate(f, func(string) (string, bool) { return "token", true }); ps.HasErrors() {
		t.Fatalf("converted flow: %v", ps)
	}
	types := map[string]int{}
	for _, n := range res.Flow {
		types[n["type"].(string)]++
	}
	for _, want := range []string{"modbus-connection", "modbus-in", "gw-device", "modbus-read", "modbus-write", "modbus-server", "tb-telemetry-out", "tb-attr-out"} {
		if types[want] == 0 {
			t.Errorf("no %s in the converted flow: %v", want, types)
		}
	}
	if len(res.Report) == 0 {
		t.Error("empty report: connectAttemptCount and connectAttemptTimeMs do not map")
	}
}

// TestCorpusWriteRPC: the Gateway's RPC-writing test configs: each RPC
// writes the value its tests send, and the telemetry the same config polls
// then shows that value, as the Gateway's tests expect — 64-bit integers
// beyond 2^53 included: RPC parameters reach the flow exactly.
func TestCorpusWriteRPC(t *testing.T) {
	dir := corpus(t)
	for _, order := range []string{"little", "big"} {
		t.Run(order, func(t *testing.T) {
			dev := startDevice(t, dir)
			var want map[string]json.RawMessage
			readJSON(t, filepath.Join(dir, "test_values", "rpc", "holding_registers_values_writing_"+order+".json"), &want)
			tbs, _ := runConverted(t, filepath.Join(dir, "configs", "rpc_configs", "holding_registers_writing_rpc_"+order+".json"), dev)
			ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
			defer cancel()
			for !slices.Contains(tbs.SubDevices("gw"), "Temp Sensor") {
				if ctx.Err() != nil {
					t.Fatal("the gateway never connected Temp Sensor")
				}
				time.Sleep(10 * time.Millisecond)
			}
			expect := map[string]string{}
			for k, w := range want {
				if reply, err := tbs.RPC(ctx, "Temp Sensor", k, w, false); err != nil || strings.Contains(string(reply), "error") {
					t.Fatalf("rpc %s(%s): %s %v", k, w, reply, err)
				}
				var s string
				if json.Unmarshal(w, &s) != nil {
					s = string(w)
				}
				expect[k] = s
			}
			if len(expect) < len(want) {
				t.Fatalf("only %d keys checked", len(expect))
			}
			deadline := time.Now().Add(enginetest.WaitLimit)
			for {
				latest := tbs.Latest("Temp Sensor")
				var bad []string
				for k, w := range expect {
					if got := latest[k].Value; !sameAsTB(w, got) {
						bad = append(bad, fmt.Sprintf("%s: ThingsBoard got %#v, the Gateway shows %s", k, got, w))
					}
				}
				if len(bad) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal(strings.Join(bad, "\n"))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
