package tb_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb"
)

// mosquittoPeer is Debian's mosquitto with a responder that plays
// ThingsBoard's part for one device on the v1 topics: it stores telemetry
// and attributes, answers attribute requests and client-side RPC (echo,
// and {"error":"timeout"} for other methods), pushes shared attributes and
// sends server-side RPC. Mosquitto echoes publishes to their subscribers,
// so the responder skips what it published itself.
type mosquittoPeer struct {
	broker *peers.Mosquitto
	cli    mqtt.Client

	mu        sync.Mutex
	tele      map[string][]any
	client    map[string]any
	shared    map[string]any
	claimKeys []string
	ownPushes map[string]bool
	rpcSeq    int
	replies   map[string]chan []byte
}

func newMosquittoPeer(t *testing.T) peer {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{Persistent: true})
	p := &mosquittoPeer{
		broker: m, tele: map[string][]any{}, client: map[string]any{}, shared: map[string]any{},
		ownPushes: map[string]bool{}, replies: map[string]chan []byte{},
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("tb-responder").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetKeepAlive(10 * time.Second).SetOrderMatters(true)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		c.SubscribeMultiple(map[string]byte{
			"v1/devices/me/telemetry":            1,
			"v1/devices/me/attributes":           1,
			"v1/devices/me/attributes/request/+": 1,
			"v1/devices/me/rpc/request/+":        1,
			"v1/devices/me/rpc/response/+":       1,
			"v1/devices/me/claim":                1,
		}, p.handle)
	})
	p.cli = mqtt.NewClient(o)
	if tok := p.cli.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("responder connect: %v", tok.Error())
	}
	t.Cleanup(func() { p.cli.Disconnect(100) })
	// Wait until the responder's subscriptions are in place.
	probe := "v1/devices/me/claim"
	done := make(chan struct{})
	go func() {
		for {
			p.mu.Lock()
			n := len(p.claimKeys)
			p.mu.Unlock()
			if n > 0 {
				close(done)
				return
			}
			p.cli.Publish(probe, 1, false, `{"secretKey":"probe"}`).Wait()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("responder never subscribed")
	}
	p.mu.Lock()
	p.claimKeys = nil
	p.mu.Unlock()
	return p
}

func (p *mosquittoPeer) handle(c mqtt.Client, m mqtt.Message) {
	topic, payload := m.Topic(), m.Payload()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case topic == "v1/devices/me/telemetry":
		var v any
		if json.Unmarshal(payload, &v) != nil {
			return
		}
		recs, ok := v.([]any)
		if !ok {
			recs = []any{v}
		}
		for _, r := range recs {
			obj, _ := r.(map[string]any)
			if vals, ok := obj["values"].(map[string]any); ok && obj["ts"] != nil {
				obj = vals
			}
			for k, val := range obj {
				p.tele[k] = append(p.tele[k], val)
			}
		}
	case topic == "v1/devices/me/attributes":
		if p.ownPushes[string(payload)] {
			return
		}
		var obj map[string]any
		if json.Unmarshal(payload, &obj) == nil {
			for k, v := range obj {
				p.client[k] = v
			}
		}
	case strings.HasPrefix(topic, "v1/devices/me/attributes/request/"):
		id := strings.TrimPrefix(topic, "v1/devices/me/attributes/request/")
		var req struct{ ClientKeys, SharedKeys string }
		_ = json.Unmarshal(payload, &req)
		pick := func(src map[string]any, keys string) map[string]any {
			out := map[string]any{}
			for _, k := range strings.Split(keys, ",") {
				if v, ok := src[k]; ok {
					out[k] = v
				}
			}
			return out
		}
		resp := map[string]any{}
		switch {
		case req.ClientKeys == "" && req.SharedKeys == "":
			resp["client"], resp["shared"] = copyMap(p.client), copyMap(p.shared)
		default:
			if req.ClientKeys != "" {
				resp["client"] = pick(p.client, req.ClientKeys)
			}
			if req.SharedKeys != "" {
				resp["shared"] = pick(p.shared, req.SharedKeys)
			}
		}
		b, _ := json.Marshal(resp)
		c.Publish("v1/devices/me/attributes/response/"+id, 1, false, b)
	case strings.HasPrefix(topic, "v1/devices/me/rpc/request/"):
		id := strings.TrimPrefix(topic, "v1/devices/me/rpc/request/")
		if n, _ := strconv.Atoi(id); n < 1_000_000 {
			return // our own server-side RPC
		}
		var req struct {
			Method string
			Params json.RawMessage
		}
		_ = json.Unmarshal(payload, &req)
		reply := []byte(`{"error":"timeout"}`)
		switch req.Method {
		case "echo":
			reply = req.Params
		case "text":
			reply = []byte(textReply)
		}
		c.Publish("v1/devices/me/rpc/response/"+id, 1, false, reply)
	case strings.HasPrefix(topic, "v1/devices/me/rpc/response/"):
		id := strings.TrimPrefix(topic, "v1/devices/me/rpc/response/")
		if ch, ok := p.replies[id]; ok {
			ch <- append([]byte(nil), payload...)
			delete(p.replies, id)
		}
	case topic == "v1/devices/me/claim":
		var req struct{ SecretKey string }
		_ = json.Unmarshal(payload, &req)
		p.claimKeys = append(p.claimKeys, req.SecretKey)
	}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (p *mosquittoPeer) config(*testing.T) tb.Config {
	host, port, _ := strings.Cut(p.broker.Addr, ":")
	n, _ := strconv.Atoi(port)
	return tb.Config{Host: host, Port: n, AccessToken: "device-token", SkipSessionLimits: true, Protocol: testProtocol()}
}

func (p *mosquittoPeer) telemetry(key string) []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]any(nil), p.tele[key]...)
}

func (p *mosquittoPeer) clientAttribute(key string) (any, bool) {
	// The PUBACK reached the device before the responder's copy arrived.
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		v, ok := p.client[key]
		p.mu.Unlock()
		if ok {
			return v, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, false
}

func (p *mosquittoPeer) push(t *testing.T, body map[string]any) {
	b, _ := json.Marshal(body)
	p.mu.Lock()
	p.ownPushes[string(b)] = true
	p.mu.Unlock()
	if !p.cli.IsConnectionOpen() {
		return // stored; the device requests it after reconnecting
	}
	// During an outage the responder may not have noticed yet that the
	// broker is gone: the value is stored all the same (and the device
	// requests it after reconnecting), and the responder's session may
	// still deliver the push later. A push that was needed and never came
	// shows as a missing update in the test itself.
	if tok := p.cli.Publish("v1/devices/me/attributes", 1, false, b); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Logf("push not acknowledged: %v", tok.Error())
	}
}

func (p *mosquittoPeer) setShared(t *testing.T, kv map[string]any) {
	p.mu.Lock()
	for k, v := range kv {
		p.shared[k] = v
	}
	p.mu.Unlock()
	p.push(t, kv)
}

func (p *mosquittoPeer) deleteShared(t *testing.T, keys ...string) {
	p.mu.Lock()
	for _, k := range keys {
		delete(p.shared, k)
	}
	p.mu.Unlock()
	p.push(t, map[string]any{"deleted": keys})
}

func (p *mosquittoPeer) rpc(t *testing.T, method string, params any) json.RawMessage {
	p.mu.Lock()
	id := strconv.Itoa(p.rpcSeq)
	p.rpcSeq++
	ch := make(chan []byte, 1)
	p.replies[id] = ch
	p.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"method": method, "params": params})
	p.cli.Publish("v1/devices/me/rpc/request/"+id, 1, false, b)
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("no reply to rpc %s", method)
	}
	return nil
}

func (p *mosquittoPeer) claims() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.claimKeys...)
}

func (p *mosquittoPeer) outage(*testing.T) { p.broker.StopGraceful() }

func (p *mosquittoPeer) restore(t *testing.T) {
	p.broker.Start()
	eventually(t, "responder reconnect", p.cli.IsConnectionOpen)
}

// TestMosquittoSuite runs the client suite against Debian's mosquitto.
func TestMosquittoSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the mosquitto peer")
	}
	runSuite(t, newMosquittoPeer)
}

var _ = context.Background
