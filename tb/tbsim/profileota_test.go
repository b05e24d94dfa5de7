package tbsim

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestProfileSoftwareOTA(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	mustAdd(t, s, Device{Name: "a", Token: "A", Type: "box"})
	mustAdd(t, s, Device{Name: "own", Token: "O", Type: "box"})
	mustAdd(t, s, Device{Name: "other", Token: "X"})
	if err := s.AssignOTA("own", "sw", OTAPackage{Title: "mine", Version: "1", Data: []byte("own data")}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("A")
	c.subscribe(1, "v1/devices/me/attributes")
	req, _ := http.NewRequest("PUT", s.HTTPURL()+"/api/device-profiles/box/ota/sw?title=flow&version=2&algorithm=md5",
		strings.NewReader("flow package"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	sum, _ := checksum("MD5", []byte("flow package"))
	jsonEqual(t, "push", c.expectPublish("v1/devices/me/attributes").Payload,
		`{"sw_title":"flow","sw_version":"2","sw_size":12,"sw_checksum_algorithm":"MD5","sw_checksum":"`+sum+`"}`)
	if st := s.Latest("a")["sw_state"]; st.Value != "INITIATED" {
		t.Fatalf("sw_state %+v", st)
	}
	// The device's own package wins; other profiles are untouched.
	if v := s.SharedAttributes("own")["sw_version"]; v != "1" {
		t.Fatalf("own package replaced: %v", v)
	}
	if _, ok := s.SharedAttributes("other")["sw_title"]; ok {
		t.Fatal("other profile got the package")
	}
	// The chunks are the profile's package.
	c.publish("v2/sw/request/7/chunk/0", 1, "")
	c.expect(packets.Puback)
	if got := c.expectPublish("v2/sw/response/7/chunk/0").Payload; string(got) != "flow package" {
		t.Fatalf("chunk %q", got)
	}
	// A device created later of the profile gets it too.
	mustAdd(t, s, Device{Name: "late", Token: "L", Type: "box"})
	if v := s.SharedAttributes("late")["sw_title"]; v != "flow" {
		t.Fatalf("late device: %v", v)
	}
	// Unassigning the profile's package removes it where it came from the
	// profile.
	req, _ = http.NewRequest("DELETE", s.HTTPURL()+"/api/device-profiles/box/ota/sw", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", err, resp)
	}
	jsonEqual(t, "deleted", c.expectPublish("v1/devices/me/attributes").Payload,
		`{"deleted":["sw_title","sw_version","sw_size","sw_checksum_algorithm","sw_checksum"]}`)
	if v := s.SharedAttributes("own")["sw_version"]; v != "1" {
		t.Fatalf("own package removed: %v", v)
	}
	// A device's own package, once removed, falls back to the profile's.
	if err := s.AssignProfileOTA("box", "sw", OTAPackage{Title: "flow", Version: "3", Data: []byte("v3")}); err != nil {
		t.Fatal(err)
	}
	c.expectPublish("v1/devices/me/attributes")
	if err := s.UnassignOTA("own", "sw"); err != nil {
		t.Fatal(err)
	}
	if v := s.SharedAttributes("own")["sw_version"]; v != "3" {
		t.Fatalf("own after unassign: %v", v)
	}
}
