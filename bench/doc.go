// Package bench holds the side-by-side benchmarks of tbflow: each figure is
// measured next to a baseline in the same run (a raw paho publisher to the
// same broker, plain Go channels, naive Modbus polling) and reported with
// their ratio. `make bench` runs every benchmark of the project and prints
// one table (see bench/cmd/benchtable).
package bench
