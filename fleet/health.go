package fleet

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stats returns the box's health: what the health telemetry sends and
// tbflow.stats answers.
func (m *Manager) Stats() map[string]any {
	f, st := m.current()
	out := map[string]any{
		"tbflowVersion": m.opts.Version,
		"uptimeS":       int64(time.Since(m.started).Seconds()),
		"flowTitle":     st.Title,
		"flowVersion":   st.Version,
		"flowRev":       m.e.Rev(),
	}
	running, inError := 0, 0
	var modbusErrors int64
	statuses := m.e.Statuses()
	conns := map[string]any{}
	var queued, deadLetters int
	var queuedBytes int64
	var oldest time.Duration
	var reconnects int64
	var sent uint64
	if f != nil {
		for _, n := range f.Nodes {
			if n.Disabled {
				continue
			}
			node, ok := m.e.Node(n.ID)
			if !ok {
				continue
			}
			running++
			if s, ok := statuses[n.ID]; ok && s.Fill == "red" {
				inError++
			}
			if strings.HasPrefix(n.Type, "modbus-") {
				if c, ok := m.e.Counters(n.ID); ok {
					modbusErrors += c.Errors
				}
			}
			c, ok := node.(Conn)
			if !ok || n.Type != ConnType {
				continue
			}
			ci := map[string]any{"state": c.State(), "reconnects": c.Reconnects()}
			reconnects += c.Reconnects()
			if dev, err := c.Device(); err == nil {
				s := dev.Stats()
				ci["queued"], ci["queuedBytes"], ci["oldestAgeS"] = s.Queued, s.QueuedBytes, s.OldestAge.Seconds()
				ci["deadLetters"], ci["sent"] = s.DeadLetters, s.Sent
				queued += s.Queued
				queuedBytes += s.QueuedBytes
				oldest = max(oldest, s.OldestAge)
				deadLetters += s.DeadLetters
				sent += s.Sent
			}
			conns[n.ID] = ci
		}
	}
	out["nodesRunning"] = running
	out["nodesInError"] = inError
	out["connections"] = conns
	out["outboxQueued"] = queued
	out["outboxBytes"] = queuedBytes
	out["outboxOldestAgeS"] = oldest.Seconds()
	out["deadLetters"] = deadLetters
	out["reconnects"] = reconnects
	out["recordsSent"] = sent
	out["modbusPollErrors"] = modbusErrors
	out["cpuPercent"] = m.cpu.percent()
	out["rssBytes"] = rss()
	out["goroutines"] = runtime.NumGoroutine()
	return out
}

// sendStats publishes the health telemetry on the management device.
func (m *Manager) sendStats(ctx context.Context) {
	dev := m.device()
	if dev == nil {
		return
	}
	if _, err := dev.PublishTelemetry(ctx, m.Stats()); err != nil {
		m.log.Warn("sending health telemetry", "err", err)
	}
}

// cpuSampler turns the process's CPU time into a percentage of one core
// since the previous sample.
type cpuSampler struct {
	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *cpuSampler) percent() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, cpu := time.Now(), cpuTime()
	var p float64
	if !s.lastWall.IsZero() {
		if wall := now.Sub(s.lastWall); wall > 0 {
			p = float64(cpu-s.lastCPU) / float64(wall) * 100
		}
	}
	s.lastCPU, s.lastWall = cpu, now
	return float64(int64(p*10)) / 10
}

// rss returns the resident set size in bytes (Linux /proc), or the Go
// runtime's memory from the OS elsewhere.
func rss() int64 {
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if fs := strings.Fields(string(data)); len(fs) > 1 {
			if pages, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}
