package tb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Protocol versions for Config.Protocol.
const (
	// ProtocolMQTT5 is MQTT 5, the default: only MQTT 5 carries
	// ThingsBoard's reason codes (quota exceeded, payload invalid, session
	// taken over...).
	ProtocolMQTT5 = "5"
	// ProtocolMQTT311 is MQTT 3.1.1.
	ProtocolMQTT311 = "3.1.1"
)

// transport is one MQTT connection, whatever the protocol version. It is
// the only part of the client that knows the MQTT library: the outbox,
// acknowledgements, limits, resync and RPC above it are shared.
type transport interface {
	// publish sends one PUBLISH; the token completes with the PUBACK
	// (QoS 1) or once written (QoS 0). Publishes are written in call order.
	publish(topic string, qos byte, payload []byte) pubToken
	// subscribe sends one SUBSCRIBE and waits (bounded) for its SUBACK; it
	// returns the filters the server refused with their codes.
	subscribe(filters map[string]byte, timeout time.Duration) (refused map[string]byte, err error)
	// close ends the connection, waiting up to quiesce for work in flight.
	close(quiesce time.Duration)
}

// pubToken is the outcome of one publish.
type pubToken interface {
	Done() <-chan struct{}
	// Error is nil when acknowledged; a *PublishError for an MQTT 5 PUBACK
	// carrying an error reason code.
	Error() error
}

// transportHooks are the callbacks of one connection. onMessage runs on
// the library's goroutine and must not block; onLost is called once.
type transportHooks struct {
	onMessage func(topic string, payload []byte)
	onLost    func(error)
}

// dialTransport makes one connection attempt with the configured protocol.
func (c *client) dialTransport(ctx context.Context, h transportHooks) (transport, error) {
	if c.cfg.Protocol == ProtocolMQTT311 {
		return c.dialV311(ctx, h)
	}
	return c.dialV5(ctx, h)
}

// --- MQTT 3.1.1: paho.mqtt.golang ------------------------------------------

type v311 struct{ cli mqtt.Client }

func (c *client) dialV311(ctx context.Context, h transportHooks) (transport, error) {
	o := mqtt.NewClientOptions()
	o.AddBroker(c.cfg.brokerURL())
	o.SetProtocolVersion(4)
	o.SetClientID(c.cfg.ClientID)
	if c.cfg.AccessToken != "" {
		o.SetUsername(c.cfg.AccessToken)
	} else {
		o.SetUsername(c.cfg.Username)
		o.SetPassword(c.cfg.Password)
	}
	if c.tlsCfg != nil {
		o.SetTLSConfig(c.tlsCfg)
	}
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetKeepAlive(c.cfg.KeepAlive)
	o.SetPingTimeout(10 * time.Second)
	o.SetConnectTimeout(c.cfg.ConnectTimeout)
	o.SetWriteTimeout(c.cfg.WriteTimeout)
	o.SetOrderMatters(true)
	o.SetMessageChannelDepth(1024)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { h.onMessage(m.Topic(), m.Payload()) })
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		h.onLost(fmt.Errorf("tb: connection lost: %w", err))
	})
	cli := mqtt.NewClient(o)
	tok := cli.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		cli.Disconnect(0)
		return nil, ErrClosed
	}
	if err := tok.Error(); err != nil {
		if ct, ok := tok.(*mqtt.ConnectToken); ok && ct.ReturnCode() != 0 && ct.ReturnCode() < 6 {
			return nil, &ConnectError{Code: ct.ReturnCode()}
		}
		return nil, fmt.Errorf("tb: connecting to %s: %w", c.cfg.brokerURL(), err)
	}
	return &v311{cli: cli}, nil
}

func (t *v311) publish(topic string, qos byte, payload []byte) pubToken {
	return t.cli.Publish(topic, qos, false, payload)
}

func (t *v311) subscribe(filters map[string]byte, timeout time.Duration) (map[string]byte, error) {
	tok := t.cli.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(timeout) {
		return nil, errors.New("subscribe not acknowledged in time")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	refused := map[string]byte{}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code > 1 {
				refused[f] = code
			}
		}
	}
	return refused, nil
}

func (t *v311) close(quiesce time.Duration) { t.cli.Disconnect(uint(quiesce / time.Millisecond)) }

// --- shared helpers -------------------------------------------------------

// doneToken is a token completed once with an error (or nil).
type doneToken struct {
	once sync.Once
	done chan struct{}
	err  error
}

func newDoneToken() *doneToken { return &doneToken{done: make(chan struct{})} }

func failedToken(err error) *doneToken {
	t := newDoneToken()
	t.complete(err)
	return t
}

func (t *doneToken) complete(err error) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
	})
}

func (t *doneToken) Done() <-chan struct{} { return t.done }
func (t *doneToken) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// deadlineConn bounds every write by a deadline and serialises writes
// (paho.golang locks a net.Conn that is a sync.Locker around each packet).
type deadlineConn struct {
	net.Conn
	sync.Mutex
	timeout time.Duration
}

func (d *deadlineConn) Write(b []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Write(b)
}

// dialNet opens the TCP (or TLS) connection for MQTT 5.
func (c *client) dialNet(ctx context.Context) (net.Conn, error) {
	addr := net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.Port))
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	if c.tlsCfg != nil {
		d := tls.Dialer{NetDialer: &net.Dialer{}, Config: c.tlsCfg}
		return d.DialContext(dctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(dctx, "tcp", addr)
}
