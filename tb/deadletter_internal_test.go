package tb

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb/internal/outbox"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestPoisonHeadDeadLettered: a message the server cannot parse sits at the
// head of the outbox. MQTT 5 answers PUBACK 0x99; MQTT 3.1.1 closes the
// connection on it. Either way it is dead-lettered (reported through the
// status and the error callback) and everything behind it is delivered.
func TestPoisonHeadDeadLettered(t *testing.T) {
	s, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDevice(tbsim.Device{Name: "d", Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	p, _ := strconv.Atoi(port)
	var mu sync.Mutex
	var reported []error
	var statuses []Status
	path := t.TempDir() + "/outbox.db"
	cfg := Config{Host: host, Port: p, Protocol: os.Getenv("TBFLOW_TEST_MQTT"), AccessToken: "tok",
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		Outbox: OutboxConfig{Path: path},
		OnError: func(err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
		},
		OnStatus: func(st Status) {
			mu.Lock()
			statuses = append(statuses, st)
			mu.Unlock()
		},
	}
	d, err := NewDevice(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// What ThingsBoard's JSON parser refuses, queued first (as a message
	// stored by an older version, or a profile the client cannot know).
	if _, err := d.c.ob.Append(context.Background(), outbox.Record{Topic: topicTelemetry, Payload: []byte(`{"poison":`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var acks []*Ack
	for i := range 5 {
		a, err := d.PublishTelemetry(ctx, Telemetry{Ts: time.UnixMilli(1700000000000 + int64(i)), Values: map[string]any{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	for i, a := range acks {
		if err := a.Wait(ctx); err != nil {
			t.Fatalf("message %d behind the poisoned head: %v", i, err)
		}
	}
	if got := len(s.History("d", "n")); got != 5 {
		t.Fatalf("server has %d values of n, want 5", got)
	}
	dead := d.DeadLetters()
	if len(dead) != 1 || string(dead[0].Payload) != `{"poison":` {
		t.Fatalf("dead letters %+v, want the poisoned message", dead)
	}
	if cfg.Protocol == ProtocolMQTT311 {
		if dead[0].Reason != poisonReason {
			t.Fatalf("reason %q, want %q", dead[0].Reason, poisonReason)
		}
	} else if !strings.Contains(dead[0].Reason, "0x99") {
		t.Fatalf("reason %q, want the PUBACK's 0x99", dead[0].Reason)
	}
	eventuallyT(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, st := range statuses {
			if st.DeadLetters == 1 && errors.Is(st.LastDeadLetter, ErrDeadLetter) {
				return true
			}
		}
		return false
	})
	mu.Lock()
	var de *DeadLetterError
	if len(reported) == 0 || !errors.As(reported[len(reported)-1], &de) || de.Reason != dead[0].Reason {
		t.Fatalf("error callback got %v, want the dead letter", reported)
	}
	mu.Unlock()
	// The dead letter is in the file: retried, it is refused again.
	if n, err := d.RetryDeadLetters(); n != 1 || err != nil {
		t.Fatalf("retry: %d, %v", n, err)
	}
	eventuallyT(t, func() bool { return d.Status().DeadLetters == 1 && d.Status().Queued == 0 })
	if n, err := d.DropDeadLetters(); n != 1 || err != nil {
		t.Fatalf("drop: %d, %v", n, err)
	}
}
