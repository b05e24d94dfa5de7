package tb

import (
	"fmt"
	"sync"
	"time"
)

// serialQueue runs tasks one at a time, in order, on its own goroutine, so
// that handlers never run on paho's router goroutine. Appending never
// blocks. A task that panics is recovered and reported; one that runs
// longer than slow is reported while it runs.
type serialQueue struct {
	name   string
	slow   time.Duration
	report func(error)
	mu     sync.Mutex
	tasks  []func()
	wake   chan struct{}
	done   chan struct{}
}

func newSerialQueue(name string, slow time.Duration, report func(error), stop <-chan struct{}) *serialQueue {
	q := &serialQueue{name: name, slow: slow, report: report, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.loop(stop)
	return q
}

func (q *serialQueue) push(task func()) {
	q.mu.Lock()
	q.tasks = append(q.tasks, task)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *serialQueue) loop(stop <-chan struct{}) {
	defer close(q.done)
	for {
		q.mu.Lock()
		tasks := q.tasks
		q.tasks = nil
		q.mu.Unlock()
		for _, t := range tasks {
			runGuarded(q.name, q.slow, q.report, t)
		}
		if len(tasks) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-stop:
			return
		}
	}
}

// runGuarded runs fn, recovering a panic and reporting a slow run.
func runGuarded(name string, slow time.Duration, report func(error), fn func()) {
	t := time.AfterFunc(slow, func() {
		report(fmt.Errorf("tb: %s handler still running after %s", name, slow))
	})
	defer t.Stop()
	defer func() {
		if r := recover(); r != nil {
			report(&HandlerPanicError{Handler: name, Value: r})
		}
	}()
	fn()
}
