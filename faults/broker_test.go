package faults

import (
	"context"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb"
)

const topicTelemetry = "v1/devices/me/telemetry"

// outage is how long a broker stays away at least.
const outage = 2 * time.Second

// subscriber counts the numbered telemetry mosquitto delivers. It keeps a
// persistent session (clean session off, QoS 1) so that what mosquitto had
// queued for it survives a restart of the broker as far as mosquitto's
// persistence does, and subscribes again after every connect in case the
// session itself was not saved.
type subscriber struct {
	cli mqtt.Client

	mu      sync.Mutex
	copies  map[int]int
	subacks int
	bad     int
}

func newSubscriber(t *testing.T, addr string) *subscriber {
	t.Helper()
	s := &subscriber{copies: map[int]int{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("faults-subscriber").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetKeepAlive(5 * time.Second).SetOrderMatters(false)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		defer s.mu.Unlock()
		seq, ok := SeqOf(m.Payload())
		if !ok {
			s.bad++
			return
		}
		s.copies[seq]++
	})
	o.SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.Subscribe(topicTelemetry, 1, nil)
		go func() {
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				s.mu.Lock()
				s.subacks++
				s.mu.Unlock()
			}
		}()
	})
	s.cli = mqtt.NewClient(o)
	if tok := s.cli.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: connecting to mosquitto: %v", tok.Error())
	}
	t.Cleanup(func() { s.cli.Disconnect(100) })
	return s
}

func (s *subscriber) subscribed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subacks
}

func (s *subscriber) received() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.copies))
	for k, v := range s.copies {
		out[k] = v
	}
	return out
}

func (s *subscriber) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.copies)
}

// TestFaultBrokerKill9Mosquitto kills Debian's mosquitto with SIGKILL while
// a device streams numbered telemetry through it, starts it again on the
// same port, and counts what a subscriber with a persistent session got.
//
// Mosquitto acknowledges a QoS 1 publish as soon as it has it in memory and
// saves its state only every second (autosave_interval 1), so SIGKILL can
// lose messages it had already PUBACKed but not yet forwarded or saved:
// those are mosquitto's losses, not tbflow's. The proxy between the device
// and the broker sees every PUBACK on the wire, so the test can tell them
// apart: a message counts as lost only if the client never had a PUBACK for
// it from the killed broker and yet it never arrived; messages PUBACKed by
// the killed broker (and reported as acknowledged to the caller before the
// restart) that never arrived are reported as broker_lost.
func TestFaultBrokerKill9Mosquitto(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{Persistent: true})
	sub := newSubscriber(t, m.Addr)
	eventually(t, 10*time.Second, "the subscriber's SUBACK", func() bool { return sub.subscribed() > 0 })

	proxy, wire := observedProxy(t, m.Addr)

	host, port := hostPort(t, proxy.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, end := startDevice(t, ctx, tb.Config{
		Host: host, Port: port, AccessToken: "fault-device", SkipSessionLimits: true,
		Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
	}, 4*time.Millisecond)
	defer end()
	eventually(t, 30*time.Second, "300 messages delivered before the kill", func() bool { return sub.distinct() >= 300 })

	// The device cannot reach the broker again until the subscriber is
	// back: what the new broker acknowledges must have a subscriber to go to.
	proxy.Refuse(true)
	m.Stop() // SIGKILL
	proxy.SetGeneration(1)
	_, atKill := st.counts()
	time.Sleep(outage) // the fault lasts this long by design
	eventually(t, 30*time.Second, "200 messages accepted during the outage", func() bool {
		_, n := st.counts()
		return n >= atKill+200
	})
	before := sub.subscribed()
	m.Start()
	eventually(t, 30*time.Second, "the subscriber attached again", func() bool { return sub.subscribed() > before })

	// Snapshot, before the device can reach the new broker, which messages
	// the device already holds as acknowledged (by the killed broker).
	backlog := st.acceptedSoFar()
	ackedByKilled := map[int]bool{}
	for _, n := range backlog {
		if st.ackedNil(n) {
			ackedByKilled[n] = true
		}
	}
	proxy.Refuse(false)
	reopened := time.Now()
	_, atReopen := st.counts()
	recovery, ok, ackErrs := st.finish(t, ctx, backlog, reopened, "the broker came back")
	excuse := func(n int) bool { return ackedByKilled[n] && wire.acked(n, 0) }
	waitFor(30*time.Second, func() bool { return account(st, sub.received(), excuse, nil).lost == 0 })
	tl := account(st, sub.received(), excuse, wire)
	sent, _ := st.counts()
	record(t, Result{
		Fault: "mosquitto kill -9 + restart", Sent: sent, Acknowledged: tl.acknowledged,
		Delivered: tl.delivered, Duplicated: tl.duplicated, Lost: tl.lost, Recovery: recovery,
		Extra: map[string]int64{
			"broker_lost": int64(tl.excused), "false_acks": int64(tl.falseAcks),
			"accepted_in_outage": int64(atReopen - atKill),
		},
	})
	tl.check(t)
	st.checkAcks(t, ok, ackErrs)
}

// TestFaultBrokerPauseTBSim takes the ThingsBoard-compatible endpoint away
// (tbsim's listener closes and every connection drops) while a device
// streams numbered telemetry, brings it back, and counts what tbsim stored.
// tbsim stores a publish before it PUBACKs it, so nothing acknowledged may
// be missing.
func TestFaultBrokerPauseTBSim(t *testing.T) {
	s := newTBSim(t, "fault-device", "fault-token")
	proxy, wire := observedProxy(t, s.MQTTAddr())

	host, port := hostPort(t, proxy.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, end := startDevice(t, ctx, tb.Config{
		Host: host, Port: port, AccessToken: "fault-token",
		Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
	}, 4*time.Millisecond)
	defer end()
	eventually(t, 30*time.Second, "300 messages stored before the outage", func() bool { return len(tbsimCopies(s, "fault-device")) >= 300 })
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	_, atPause := st.counts()
	time.Sleep(outage) // the fault lasts this long by design
	eventually(t, 30*time.Second, "200 messages accepted during the outage", func() bool {
		_, n := st.counts()
		return n >= atPause+200
	})
	backlog := st.acceptedSoFar()
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	_, atResume := st.counts()
	recovery, ok, ackErrs := st.finish(t, ctx, backlog, resumed, "tbsim came back")
	// tbsim stores before it acknowledges: no waiting for stragglers.
	tl := account(st, tbsimCopies(s, "fault-device"), nil, wire)
	sent, _ := st.counts()
	record(t, Result{
		Fault: "tbsim pause + resume", Sent: sent, Acknowledged: tl.acknowledged,
		Delivered: tl.delivered, Duplicated: tl.duplicated, Lost: tl.lost, Recovery: recovery,
		Extra: map[string]int64{"false_acks": int64(tl.falseAcks), "accepted_in_outage": int64(atResume - atPause)},
	})
	tl.check(t)
	st.checkAcks(t, ok, ackErrs)
}
