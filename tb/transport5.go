package tb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// v5 is one MQTT 5 connection through paho.golang.
//
// paho.golang's Publish blocks until the PUBACK; to pipeline a window of
// QoS 1 messages in order, each is sent with PublishMethod_AsyncSend under
// a mutex (so writes keep the call order) and the session store is wrapped
// to hand the PUBACK to the message's own token.
type v5 struct {
	cli  *paho.Client
	sess *sessionTap
	ctx  context.Context // ends when the connection is lost
	stop context.CancelFunc
	mu   sync.Mutex // orders publishes
	lost func(error)
}

// sessionTap is paho's in-memory session, with the response channel of the
// next PUBLISH replaced by the one of the publish being made.
type sessionTap struct {
	*state.State
	next chan<- packets.ControlPacket // set under v5.mu around one publish
}

func (s *sessionTap) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	if p.Type() == packets.PUBLISH && s.next != nil {
		resp, s.next = s.next, nil
	}
	return s.State.AddToSession(ctx, p, resp)
}

func (c *client) dialV5(ctx context.Context, h transportHooks) (transport, error) {
	nc, err := c.dialNet(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("tb: connecting to %s: %w", c.cfg.brokerURL(), err)
	}
	tctx, stop := context.WithCancel(context.Background())
	t := &v5{sess: &sessionTap{State: state.NewInMemory()}, ctx: tctx, stop: stop}
	var once sync.Once
	t.lost = func(err error) {
		once.Do(func() {
			stop()
			h.onLost(err)
		})
	}
	t.cli = paho.NewClient(paho.ClientConfig{
		ClientID: c.cfg.ClientID,
		Conn:     &deadlineConn{Conn: nc, timeout: c.cfg.WriteTimeout},
		Session:  t.sess,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			h.onMessage(pr.Packet.Topic, pr.Packet.Payload)
			return true, nil
		}},
		PacketTimeout: c.cfg.ConnectTimeout,
		OnServerDisconnect: func(d *paho.Disconnect) {
			e := &DisconnectError{Reason: d.ReasonCode}
			if d.Properties != nil {
				e.Message = d.Properties.ReasonString
			}
			t.lost(e)
		},
		OnClientError: func(err error) { t.lost(fmt.Errorf("tb: connection lost: %w", err)) },
	})
	cp := &paho.Connect{
		ClientID:   c.cfg.ClientID,
		KeepAlive:  uint16(min(c.cfg.KeepAlive/time.Second, 65535)),
		CleanStart: true,
	}
	switch {
	case c.cfg.AccessToken != "":
		cp.Username, cp.UsernameFlag = c.cfg.AccessToken, true
	case c.cfg.Username != "" || c.cfg.Password != "":
		cp.Username, cp.UsernameFlag = c.cfg.Username, c.cfg.Username != ""
		cp.Password, cp.PasswordFlag = []byte(c.cfg.Password), c.cfg.Password != ""
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	ca, err := t.cli.Connect(cctx, cp)
	if err != nil {
		stop()
		_ = nc.Close()
		if ctx.Err() != nil {
			return nil, ErrClosed
		}
		if ca != nil && ca.ReasonCode >= 0x80 {
			return nil, &ConnectError{Code: v3ConnackCode(ca.ReasonCode), Reason: ca.ReasonCode}
		}
		return nil, fmt.Errorf("tb: connecting to %s: %w", c.cfg.brokerURL(), err)
	}
	go func() {
		// Every end of the connection reaches OnClientError or
		// OnServerDisconnect; this catches any other, after giving those
		// the chance to report their reason first.
		<-t.cli.Done()
		time.Sleep(time.Second)
		t.lost(errors.New("tb: connection lost: connection closed"))
	}()
	return t, nil
}

// v3ConnackCode maps an MQTT 5 CONNACK reason to the 3.1.1 return code, as
// ThingsBoard's ReturnCodeResolver does.
func v3ConnackCode(reason byte) byte {
	switch reason {
	case 0x84:
		return 1
	case 0x85:
		return 2
	case 0x88, 0x89, 0x9F:
		return 3
	case 0x86, 0x87, 0x8C:
		return 5
	}
	return 3
}

func (t *v5) publish(topic string, qos byte, payload []byte) pubToken {
	p := &paho.Publish{Topic: topic, QoS: qos, Payload: payload}
	if qos == 0 {
		t.mu.Lock()
		_, err := t.cli.PublishWithOptions(t.ctx, p, paho.PublishOptions{})
		t.mu.Unlock()
		if err != nil {
			return failedToken(fmt.Errorf("tb: publish: %w", err))
		}
		return failedToken(nil)
	}
	resp := make(chan packets.ControlPacket, 1)
	t.mu.Lock()
	t.sess.next = resp
	_, err := t.cli.PublishWithOptions(t.ctx, p, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
	t.sess.next = nil
	t.mu.Unlock()
	if err != nil {
		if !errors.Is(err, paho.ErrNetworkErrorAfterStored) {
			return failedToken(fmt.Errorf("tb: publish: %w", err))
		}
		t.lost(fmt.Errorf("tb: connection lost: writing: %w", err))
	}
	tok := newDoneToken()
	go func() {
		select {
		case r := <-resp:
			pa, ok := r.Content.(*packets.Puback)
			switch {
			case !ok:
				tok.complete(errors.New("tb: publish not acknowledged: connection closed"))
			case pa.ReasonCode >= 0x80:
				e := &PublishError{Reason: pa.ReasonCode}
				if pa.Properties != nil {
					e.Message = pa.Properties.ReasonString
				}
				tok.complete(e)
			default:
				tok.complete(nil)
			}
		case <-t.ctx.Done():
			tok.complete(errors.New("tb: publish not acknowledged: connection lost"))
		}
	}()
	return tok
}

func (t *v5) subscribe(filters map[string]byte, timeout time.Duration) (map[string]byte, error) {
	names := make([]string, 0, len(filters))
	for f := range filters {
		names = append(names, f)
	}
	sort.Strings(names)
	s := &paho.Subscribe{}
	for _, f := range names {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: filters[f]})
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	sa, err := t.cli.Subscribe(ctx, s)
	if sa == nil {
		return nil, err
	}
	refused := map[string]byte{}
	for i, code := range sa.Reasons {
		if code >= 0x80 && i < len(names) {
			refused[names[i]] = code
		}
	}
	return refused, nil
}

// close needs no quiesce: the client closes a connection only after its
// sender ended (and, on Close, after the outbox was flushed).
func (t *v5) close(time.Duration) {
	t.lost(ErrClosed)
	_ = t.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	_ = t.sess.Close()
}
