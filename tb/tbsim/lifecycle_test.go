package tbsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestRenameNotifiesTheGateway(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
		mustAdd(t, s, Device{Name: "gw", Token: "GW", Gateway: true})
		c := dialGateway(t, s, v)
		c.subscribe(1, "v1/devices/me/rpc/request/+")
		c.publishOK(topicGwConnect, `{"device":"A"}`)
		c.publishOK(topicGwTelemetry, `{"A":[{"ts":1,"values":{"t":1}}]}`)
		resp, err := http.Post(s.HTTPURL()+"/api/devices/A/rename", "application/json", strings.NewReader(`{"name":"B"}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("rename: %v %v", err, resp)
		}
		resp.Body.Close()
		pk := c.expectPublish("v1/devices/me/rpc/request/0")
		jsonEqual(t, "notice", pk.Payload, `{"method":"gateway_device_renamed","params":{"A":"B"}}`)
		if s.Latest("A") != nil || s.History("B", "t")[0].Value != int64(1) {
			t.Fatal("data did not follow the rename")
		}
		// The open gateway session still routes the old name to the
		// renamed device, and downlinks use the new name.
		c.publishOK(topicGwTelemetry, `{"A":[{"ts":2,"values":{"t":2}}]}`)
		if h := s.History("B", "t"); len(h) != 2 {
			t.Fatalf("B history %v", h)
		}
		if err := s.SetShared("B", map[string]any{"k": 1}); err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, `{"device":"B","data":{"k":1}}`)
		// After a reconnect the old name is a new device.
		c.disconnect()
		c = dialGateway(t, s, v)
		c.publishOK(topicGwTelemetry, `{"A":[{"t":3}]}`)
		if h := s.History("A", "t"); len(h) != 1 || h[0].Value != int64(3) {
			t.Fatalf("A history %v", h)
		}
		var names []string
		for _, d := range s.Devices() {
			names = append(names, d.Name)
		}
		if strings.Join(names, ",") != "A,B,gw" {
			t.Fatalf("devices %v", names)
		}
	})
}

func TestDeleteNotifiesTheGatewayAtNextConnect(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
		mustAdd(t, s, Device{Name: "gw", Token: "GW", Gateway: true})
		mustAdd(t, s, Device{Name: "plain", Token: "P"})
		c := dialGateway(t, s, v)
		c.publishOK(topicGwConnect, `{"device":"A"}`)
		c.publishOK(topicGwConnect, `{"device":"C"}`)
		c.disconnect()
		if err := s.waitFor(ctxT(t), func() (bool, error) { return !connectedLocked(s.devices["gw"]), nil }); err != nil {
			t.Fatal(err)
		}
		// Offline: the notices wait for the gateway's RPC subscription.
		if err := s.DeleteDevice("A"); err != nil {
			t.Fatal(err)
		}
		if err := s.RenameDevice("C", "D"); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("DELETE", s.HTTPURL()+"/api/devices/nope", nil)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("delete unknown: %v %v", err, resp)
		}
		c = dialGateway(t, s, v)
		c.subscribe(1, "v1/devices/me/rpc/request/+")
		pk := c.expectPublish("v1/devices/me/rpc/request/0")
		jsonEqual(t, "deleted", pk.Payload, `{"method":"gateway_device_deleted","params":"A"}`)
		pk = c.expectPublish("v1/devices/me/rpc/request/1")
		jsonEqual(t, "renamed", pk.Payload, `{"method":"gateway_device_renamed","params":{"C":"D"}}`)
		// One-way: not sent again on the next subscription.
		c.subscribe(1, "v1/devices/me/rpc/request/+")
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("re-sent: %v", got)
		}
		// Data under the deleted name creates a new device.
		c.publishOK(topicGwTelemetry, `{"A":[{"t":1}]}`)
		resp, err := http.Get(s.HTTPURL() + "/api/devices")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []Device
		_ = json.NewDecoder(resp.Body).Decode(&list)
		if len(list) != 4 || list[0].Name != "A" || list[0].LastGateway != "gw" {
			t.Fatalf("devices %+v", list)
		}
		// A deleted device's own session is closed; no notice without a gateway.
		p := dialRaw(t, s.MQTTAddr(), v)
		p.connectOK("P")
		if err := s.DeleteDevice("plain"); err != nil {
			t.Fatal(err)
		}
		if code := p.expectClosed(); code != map[byte]int{4: -1, 5: codeAdministrativeAction}[v] {
			t.Fatalf("disconnect %d", code)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("notice for a plain device: %v", got)
		}
		p = dialRaw(t, s.MQTTAddr(), v)
		if ack := p.connect(connectOpts{clientID: "x", username: "P"}); ack.ReasonCode == 0 {
			t.Fatal("deleted credentials accepted")
		}
	})
}

func TestRenameDeleteErrors(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	mustAdd(t, s, Device{Name: "a", Token: "A"})
	mustAdd(t, s, Device{Name: "b", Token: "B"})
	post(t, s, "/api/devices/a/rename", `{"name":"b"}`, http.StatusConflict)
	post(t, s, "/api/devices/nope/rename", `{"name":"c"}`, http.StatusNotFound)
	post(t, s, "/api/devices/a/rename", `{"name":" "}`, http.StatusBadRequest)
	post(t, s, "/api/devices/a/rename", `{"name":"c"}`, http.StatusOK)
	// The credentials follow the device.
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("A")
	c.publishAck(topicTelemetry, `{"x":1}`)
	if s.Latest("c")["x"].Value != int64(1) {
		t.Fatalf("latest %v", s.Latest("c"))
	}
}
