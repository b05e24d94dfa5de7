package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
)

// BenchmarkModbusPoll polls 10 units × 100 holding registers over Modbus
// TCP on loopback every 100 ms for a while (TBFLOW_BENCH_MODBUS_DURATION,
// default 3s), once with tbflow's merging scheduler and once naively, one
// request per register (the same bus limited to 1 register per request),
// in the same run. It reports requests per cycle (all 10 units once),
// cycle time (the summed round trips of one cycle), the CPU the process
// used (client and the in-process simulated device), and ratio = naive
// requests per cycle / merged requests per cycle.
func BenchmarkModbusPoll(b *testing.B) {
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("TBFLOW_BENCH_MODBUS_DURATION")); err == nil && v > 0 {
		dur = v
	}
	const units, regsPerUnit, period = 10, 100, 100 * time.Millisecond
	sim := modbussim.New()
	var regs []modbus.Register
	for i := range regsPerUnit {
		regs = append(regs, modbus.Register{Key: fmt.Sprintf("r%03d", i), Function: modbus.Holding, Address: uint16(i)})
	}
	for u := 1; u <= units; u++ {
		for i := range regs {
			_ = sim.Unit(uint8(u)).Set(regs[i], u*1000+i)
		}
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()

	run := func(maxRegs int) (reqPerCycle, cycleMS, cpuPct float64) {
		bus, err := modbus.NewBus(modbus.Config{URL: "tcp://" + sim.Addr(), MaxRegisters: maxRegs, Timeout: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		_ = bus.Start()
		defer bus.Close(context.Background())
		var mu sync.Mutex
		var polls, requests int
		var latency time.Duration
		var failed error
		for u := 1; u <= units; u++ {
			remove, err := bus.AddPoller(modbus.PollConfig{Unit: uint8(u), Period: period, Registers: regs}, func(r modbus.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil || len(r.Values) != regsPerUnit {
					failed = fmt.Errorf("unit %d: %v (%d values)", r.Unit, r.Err, len(r.Values))
					return
				}
				polls++
				requests += r.Requests
				latency += r.Latency
			})
			if err != nil {
				b.Fatal(err)
			}
			defer remove()
		}
		// Count from here: polls already under way end inside the window.
		mu.Lock()
		polls, requests, latency = 0, 0, 0
		sim.ResetRequests()
		mu.Unlock()
		cpu0, t0 := modbusCPUTime(), time.Now()
		time.Sleep(dur)
		cpu1, wall := modbusCPUTime(), time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if failed != nil {
			b.Fatal(failed)
		}
		if polls == 0 {
			b.Fatal("no polls")
		}
		cycles := float64(polls) / units
		// The device's own count agrees, give or take the requests of the
		// polls in flight at either end of the window.
		plan, _ := bus.Requests(regs)
		if served, slack := sim.Count(), 2*units*len(plan); served < requests-slack || served > requests+slack {
			b.Fatalf("the device served %d requests, the bus counted %d", served, requests)
		}
		return float64(requests) / cycles, latency.Seconds() * 1000 / cycles, 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	}

	b.ResetTimer()
	req, cycle, cpu := run(0)
	nreq, ncycle, ncpu := run(1)
	b.ReportMetric(req, "req/cycle")
	b.ReportMetric(cycle, "cycle-ms")
	b.ReportMetric(cpu, "cpu-%")
	b.ReportMetric(nreq, "naive-req/cycle")
	b.ReportMetric(ncycle, "naive-cycle-ms")
	b.ReportMetric(ncpu, "naive-cpu-%")
	b.ReportMetric(nreq/req, "x-fewer-requests")
	b.ReportMetric(0, "ns/op")
}

// modbusCPUTime is the process's user + system CPU time.
func modbusCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkModbusDeadUnit polls ten units × 20 holding registers every
// 100 ms over Modbus TCP on loopback for a while
// (TBFLOW_BENCH_MODBUS_DURATION, default 3s), with a 200 ms timeout, three
// times in the same run: a healthy bus (the nine live units alone, the
// baseline); the nine plus one unit that never answers, sharing one
// connection (the dead unit is skipped between back-offs: at most one
// timeout per cycle); and the same with a connection per unit. It reports
// the live units' mean and worst time between two polls and ratio = that
// mean with a connection per unit / the healthy bus's.
func BenchmarkModbusDeadUnit(b *testing.B) {
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("TBFLOW_BENCH_MODBUS_DURATION")); err == nil && v > 0 {
		dur = v
	}
	const live, period, timeout = 9, 100 * time.Millisecond, 200 * time.Millisecond
	sim := modbussim.New()
	var regs []modbus.Register
	for i := range 20 {
		regs = append(regs, modbus.Register{Key: fmt.Sprintf("r%02d", i), Function: modbus.Holding, Address: uint16(i)})
	}
	for u := 1; u <= live+1; u++ {
		for i := range regs {
			_ = sim.Unit(uint8(u)).Set(regs[i], u*100+i)
		}
	}
	sim.Unit(live + 1).SetDead(true)
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()

	run := func(withDead, perUnit bool) (meanMS, worstMS float64) {
		bus, err := modbus.NewBus(modbus.Config{URL: "tcp://" + sim.Addr(), Timeout: timeout, BackoffMin: timeout, BackoffMax: 2 * time.Second, PerUnit: perUnit})
		if err != nil {
			b.Fatal(err)
		}
		_ = bus.Start()
		defer bus.Close(context.Background())
		var mu sync.Mutex
		last := map[uint8]time.Time{}
		var gaps []time.Duration
		var failed error
		units := live
		if withDead {
			units++
		}
		t0 := time.Now().Add(time.Second) // count after the first second
		for u := 1; u <= units; u++ {
			remove, err := bus.AddPoller(modbus.PollConfig{Unit: uint8(u), Period: period, Registers: regs}, func(r modbus.Result) {
				if r.Unit == live+1 {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					failed = fmt.Errorf("live unit %d: %v", r.Unit, r.Err)
					return
				}
				if prev, ok := last[r.Unit]; ok && r.Time.After(t0) {
					gaps = append(gaps, r.Time.Sub(prev))
				}
				last[r.Unit] = r.Time
			})
			if err != nil {
				b.Fatal(err)
			}
			defer remove()
		}
		time.Sleep(time.Second + dur)
		mu.Lock()
		defer mu.Unlock()
		if failed != nil {
			b.Fatal(failed)
		}
		if len(gaps) == 0 {
			b.Fatal("no polls")
		}
		var sum, worst time.Duration
		for _, g := range gaps {
			sum += g
			worst = max(worst, g)
		}
		return sum.Seconds() * 1000 / float64(len(gaps)), worst.Seconds() * 1000
	}

	b.ResetTimer()
	hMean, hWorst := run(false, false)
	sMean, sWorst := run(true, false)
	pMean, pWorst := run(true, true)
	b.ReportMetric(pMean, "cycle-ms")
	b.ReportMetric(pWorst, "worst-cycle-ms")
	b.ReportMetric(sMean, "shared-cycle-ms")
	b.ReportMetric(sWorst, "shared-worst-cycle-ms")
	b.ReportMetric(hMean, "baseline-cycle-ms")
	b.ReportMetric(hWorst, "baseline-worst-cycle-ms")
	b.ReportMetric(pMean/hMean, "x-healthy-bus-cycle")
	b.ReportMetric(0, "ns/op")
}
