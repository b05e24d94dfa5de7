package tbsim

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// trackedListener is the broker's listener: mochi's listeners.Net, plus a
// record of every connection it handed to the broker, so that closing the
// server can close them and wait until the broker is done with each before
// it shuts the broker down (mochi's Close must not run while a connection
// it accepted is still being set up).
type trackedListener struct {
	id  string
	ln  net.Listener
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*trackedListener)(nil)

func newTrackedListener(id string, ln net.Listener) *trackedListener {
	return &trackedListener{id: id, ln: ln, conns: map[net.Conn]struct{}{}}
}

func (l *trackedListener) ID() string       { return l.id }
func (l *trackedListener) Address() string  { return l.ln.Addr().String() }
func (l *trackedListener) Protocol() string { return l.ln.Addr().Network() }

func (l *trackedListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve hands each accepted connection to establish on its own goroutine
// until the listener is closed.
func (l *trackedListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, c); err != nil && l.log != nil {
				l.log.Debug("connection ended", "listener", l.id, "error", err)
			}
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops accepting, lets the broker drop its clients, and closes
// every connection still open at the network level.
func (l *trackedListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	closeClients(l.id)
	l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
}

// wait blocks until every connection handed to the broker has been
// released by it, or until d has passed.
func (l *trackedListener) wait(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
