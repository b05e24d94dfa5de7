package hostile

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type frame struct {
	name string
	typ  int
	data []byte
	// closes: the server is expected to end the connection.
	closes bool
}

func wsCorpus() []frame {
	text := func(name, s string) frame { return frame{name: name, typ: websocket.TextMessage, data: []byte(s)} }
	fs := []frame{
		text("not JSON", "hello"),
		text("empty", ""),
		text("null", "null"),
		text("array", "[1,2]"),
		text("deep brackets", strings.Repeat("[", 200000)),
		text("deep args", `{"id":1,"cmd":"ping","args":`+nestedJSON(50000)+`}`),
		text("no id", `{"cmd":"ping"}`),
		text("object id", `{"id":{"a":1},"cmd":"ping"}`),
		text("huge numeric id", `{"id":1e999,"cmd":"ping"}`),
		text("long string id", `{"id":"`+strings.Repeat("i", 100000)+`","cmd":"ping"}`),
		text("unknown command", `{"id":2,"cmd":"rm -rf"}`),
		text("args not an object", `{"id":3,"cmd":"deploy","args":[1]}`),
		text("deploy garbage", `{"id":4,"cmd":"deploy","args":{"flows":"x"}}`),
		text("deploy deep", `{"id":5,"cmd":"deploy","args":{"flows":`+nestedJSON(30000)+`}}`),
		text("validate with secret env", `{"id":6,"cmd":"validate","args":{"flows":[{"id":"i","type":"inject","interval":"${HOSTILE_SECRET}"}]}}`),
		text("subscribe to many levels", `{"id":7,"cmd":"subscribe","args":{"topics":["`+strings.Repeat("+/", 10000)+`#"]}}`),
		text("subscribe to 10000 topics", `{"id":8,"cmd":"subscribe","args":{"topics":[`+strings.TrimSuffix(strings.Repeat(`"#",`, 10000), ",")+`]}}`),
		text("subscribe non-strings", `{"id":9,"cmd":"subscribe","args":{"topics":[1,null,{}]}}`),
		text("inject unknown", `{"id":10,"cmd":"inject","args":{"id":"../../x"}}`),
		text("inject non-string", `{"id":11,"cmd":"inject","args":{"id":["a"]}}`),
		text("frame over the limit", `{"id":12,"cmd":"ping","x":"`+strings.Repeat("x", frameLimit)+`"}`),
		{name: "binary frame", typ: websocket.BinaryMessage, data: []byte{0, 1, 2, 0xff}},
		{name: "invalid UTF-8 text", typ: websocket.TextMessage, data: []byte("{\"id\":13,\"cmd\":\"ping\",\"x\":\"\xff\"}"), closes: true},
	}
	return fs
}

func runWebSocket(t *testing.T, tl *Tally) {
	ed := newEditor(t)
	url := "ws" + strings.TrimPrefix(ed.hs.URL, "http") + "/api/ws"
	dial := func() (*websocket.Conn, error) {
		c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + apiToken}})
		return c, err
	}
	for _, f := range wsCorpus() {
		c, err := dial()
		if err != nil {
			tl.Add("websocket", f.name, Crashed, "dial: "+err.Error())
			continue
		}
		o, detail := sendFrame(c, f)
		c.Close()
		tl.Add("websocket", f.name, o, detail)
	}
	// Floods on one connection: many pings, then a check it still answers.
	c, err := dial()
	if err == nil {
		for i := range 2000 {
			c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":%d,"cmd":"ping"}`, i))
		}
		o, detail := sendFrame(c, frame{name: "after a flood", typ: websocket.TextMessage, data: []byte(`{"id":"last","cmd":"ping"}`)})
		tl.Add("websocket", "2000 pings then one", o, detail)
		c.Close()
	}
	// Unauthenticated and foreign-origin upgrades are refused.
	for name, hdr := range map[string]http.Header{
		"no credential":  {},
		"wrong token":    {"Authorization": {"Bearer nope"}},
		"foreign origin": {"Authorization": {"Bearer " + apiToken}, "Origin": {"http://evil.example"}},
		"rebound host":   {"Authorization": {"Bearer " + apiToken}, "Host": {"evil.example"}},
	} {
		c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
		if err == nil {
			c.Close()
			tl.Add("websocket", "upgrade with "+name, Leaked, "upgrade accepted")
			continue
		}
		if resp == nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
			tl.Add("websocket", "upgrade with "+name, Crashed, fmt.Sprint(err))
			continue
		}
		tl.Add("websocket", "upgrade with "+name, Clear, "")
	}
	if !ed.healthy() {
		tl.Add("websocket", "(health after the corpus)", Crashed, "the editor stopped answering")
	}
}

// sendFrame sends one frame and reads until the reply to it, an error
// reply, or the connection's end.
func sendFrame(c *websocket.Conn, f frame) (Outcome, string) {
	if err := c.WriteMessage(f.typ, f.data); err != nil {
		return Crashed, "write: " + err.Error()
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				if f.closes && ce.Code != websocket.CloseInvalidFramePayloadData {
					return Crashed, fmt.Sprintf("closed with %d, want 1007", ce.Code)
				}
				return Clear, ""
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return Hung, "no answer in 10s"
			}
			return Crashed, "connection dropped: " + err.Error()
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				return Leaked, "frame holds a planted secret: " + truncate(string(b))
			}
		}
		var r struct {
			ID    json.RawMessage `json:"id"`
			Event json.RawMessage `json:"event"`
			Error *struct{ Code, Message string }
		}
		if json.Unmarshal(b, &r) != nil {
			return Crashed, "server frame is not JSON"
		}
		if len(r.Event) > 0 || r.ID == nil {
			continue // an event
		}
		if f.closes {
			return Crashed, "answered a frame that must end the connection"
		}
		if r.Error != nil {
			if r.Error.Message == "" {
				return Crashed, "error reply without a message"
			}
			return Clear, ""
		}
		if string(r.ID) == `"last"` || !strings.Contains(string(f.data), `"last"`) {
			return Accepted, ""
		}
	}
}
