package tbsim

import (
	"net"
	"testing"
	"time"
)

// Pause, Resume and Close while clients are connecting: the listener comes
// back every time, and (under -race) nothing in the broker races with a
// connection being accepted.
func TestPauseResumeCloseWhileConnecting(t *testing.T) {
	dialer := func(addr string, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
			}
		}
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.MQTTAddr()
	stop := make(chan struct{})
	go dialer(addr, stop)
	for i := 0; i < 100; i++ {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("round %d: %s refuses after Resume: %v", i, addr, err)
		}
		c.Close()
	}
	close(stop)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		s, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		go dialer(s.MQTTAddr(), stop)
		time.Sleep(time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
	}
}
