package hostile

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// flowCorpus is hostile flow documents, by name.
func flowCorpus() [][2]string {
	var c [][2]string
	add := func(name, doc string) { c = append(c, [2]string{name, doc}) }
	add("deep brackets", strings.Repeat("[", 100000))
	add("deep nesting in a field", `[{"id":"a","type":"debug","x":`+nestedJSON(20000)+`}]`)
	add("not a flow: string", `"flows"`)
	add("not a flow: null", `null`)
	add("not a flow: number", `1e400`)
	add("object without flows", `{"nodes":[]}`)
	add("flows is an object", `{"flows":{"id":"a"}}`)
	add("array of numbers", `[1,2,3]`)
	add("array of arrays", `[[],[[]]]`)
	add("numeric id", `[{"id":1,"type":"debug"}]`)
	add("invalid UTF-8", "[{\"id\":\"a\xff\xfe\",\"type\":\"debug\"}]")
	add("UTF-8 BOM", "\xEF\xBB\xBF[{\"id\":\"t\",\"type\":\"tab\",\"label\":\"bom\"}]")
	add("NUL bytes", "[{\"id\":\"a\x00\",\"type\":\"debug\"}]")
	add("__proto__ keys", `[{"id":"__proto__","type":"debug","__proto__":{"polluted":true},"constructor":{}}]`)
	add("unknown type with path", `[{"id":"a","type":"../../etc/passwd"}]`)
	add("tab inside itself", `[{"id":"t","type":"tab","z":"t"}]`)
	add("wire to a config node", `[{"id":"c","type":"tb-connection","host":"127.0.0.1"},{"id":"a","type":"debug","wires":[["c"]]}]`)
	add("wires not arrays", `[{"id":"a","type":"debug","wires":"b"}]`)
	add("huge output index", `[{"id":"a","type":"inject","wires":[`+strings.Repeat(`[],`, 5000)+`["a"]]}]`)
	var b strings.Builder
	b.WriteString(`[{"id":"t","type":"tab"}`)
	for i := range 10000 {
		fmt.Fprintf(&b, `,{"id":"n%d","type":"debug","z":"t","wires":[]}`, i)
	}
	add("10000 nodes", b.String()+"]")
	b.Reset()
	b.WriteString(`[{"id":"t","type":"tab"}`)
	for i := range 1000 {
		fmt.Fprintf(&b, `,{"id":"dup","type":"debug","z":"t","name":"%d"}`, i)
	}
	add("1000 duplicate ids", b.String()+"]")
	wires := strings.TrimSuffix(strings.Repeat(`"s",`, 100000), ",")
	add("100000 duplicate wires", `[{"id":"t","type":"tab"},{"id":"i","type":"inject","z":"t","wires":[[`+wires+`]]},{"id":"s","type":"debug","z":"t"}]`)
	b.Reset()
	b.WriteString(`[{"id":"t","type":"tab"}`)
	for i := range 5000 {
		fmt.Fprintf(&b, `,{"id":"c%d","type":"transform","z":"t","expression":"payload","wires":[["c%d"]]}`, i, (i+1)%5000)
	}
	add("5000-node cycle", b.String()+"]")
	add("string of 1.5 MB", `[{"id":"t","type":"tab","label":"`+strings.Repeat("x", 1500000)+`"}]`)
	add("body over the limit", `[{"id":"t","type":"tab","label":"`+strings.Repeat("x", frameLimit)+`"}]`)
	add("secret env in a duration", `[{"id":"t","type":"tab"},{"id":"i","type":"inject","z":"t","interval":"${HOSTILE_SECRET}"}]`)
	add("secret env in a port", `[{"id":"c","type":"tb-connection","host":"127.0.0.1","port":"${HOSTILE_SECRET}"}]`)
	add("secret env in an enum", `[{"id":"c","type":"tb-connection","host":"127.0.0.1","mode":"${HOSTILE_SECRET}"}]`)
	add("reserved env", `[{"id":"c","type":"tb-connection","host":"${TBFLOW_AUTH_PASSWORD_HASH}"}]`)
	add("secret in a bad expression", `[{"id":"t","type":"tab"},{"id":"x","type":"transform","z":"t","expression":"${HOSTILE_SECRET} +"}]`)
	add("outbox traversal", `[{"id":"c","type":"tb-connection","host":"127.0.0.1","outboxPath":"../../../tmp/x.db"}]`)
	add("outbox absolute", `[{"id":"c","type":"tb-connection","host":"127.0.0.1","outboxPath":"/etc/passwd"}]`)
	add("placeholder without a value", `[{"id":"new","type":"tb-connection","host":"127.0.0.1","accessToken":"__SECRET__"}]`)
	add("expression bomb (deploys, fails per message)", `[{"id":"t","type":"tab"},{"id":"x","type":"transform","z":"t","expression":"len(repeat(repeat(\"a\", 999999), 1000000))"}]`)
	add("expression over the node limit", `[{"id":"t","type":"tab"},{"id":"x","type":"transform","z":"t","expression":"`+strings.Repeat("1+", 5000)+`1"}]`)
	add("stale revision", `{"rev":"0000000000000000","flows":[]}`)
	return c
}

func runFlows(t *testing.T, tl *Tally) {
	ed := newEditor(t)
	// A connection with a stored token, for the retargeting inputs.
	conn := `[{"id":"conn","type":"tb-connection","host":"127.0.0.1","port":1,"accessToken":"` + storedToken + `"}]`
	if a := ed.do("POST", "/api/flows", conn); a.status != 200 {
		t.Fatalf("deploying the connection: %d %s", a.status, a.body)
	}
	for _, in := range flowCorpus() {
		for _, path := range []string{"/api/validate", "/api/flows"} {
			var a answer
			done, p := within(30*time.Second, func() { a = ed.do("POST", path, in[1]) })
			switch {
			case p != nil:
				tl.Add("flows", in[0], Crashed, fmt.Sprint(p))
			case !done:
				tl.Add("flows", in[0], Hung, path+" did not answer in 30s")
			default:
				o, detail := classify(a)
				tl.Add("flows", in[0]+" "+path, o, detail)
			}
		}
	}
	// Retargeting the stored token must be refused, not obeyed.
	if a := ed.do("POST", "/api/flows", conn); a.status != 200 {
		t.Fatalf("deploying the connection again: %d %s", a.status, a.body)
	}
	for _, host := range []string{`"host":"evil.example","port":1`, `"host":"127.0.0.1","port":2`, `"host":"127.0.0.1","port":1,"tls":true`} {
		a := ed.do("POST", "/api/flows", `[{"id":"conn","type":"tb-connection",`+host+`,"accessToken":"__SECRET__"}]`)
		o, detail := classify(a)
		if o == Accepted || !strings.Contains(a.body, "re-enter the token") {
			o, detail = Leaked, "the stored token followed a changed server: "+truncate(a.body)
		}
		tl.Add("flows", "retarget "+host, o, detail)
	}
	// DNS rebinding: a foreign Host is refused everywhere.
	for _, path := range []string{"/api/flows", "/healthz", "/"} {
		a := ed.do("GET", path, "", "Host", "evil.example")
		o, detail := classify(a)
		if a.status != 421 {
			o, detail = Leaked, fmt.Sprintf("a rebound Host got %d", a.status)
		}
		tl.Add("flows", "rebound Host "+path, o, detail)
	}
	if !ed.healthy() {
		tl.Add("flows", "(health after the corpus)", Crashed, "the editor stopped answering")
	}
}
