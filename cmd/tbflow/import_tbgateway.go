package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tbflow/tbflow/importers/tbgateway"
)

func init() {
	registerImporter("tb-gateway", "a ThingsBoard IoT Gateway Modbus connector config (modbus.json)", runImportTBGateway)
}

func runImportTBGateway(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tbflow import tb-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the flow to this file instead of standard output")
	host := fs.String("tb-host", "127.0.0.1", "ThingsBoard MQTT host of the generated gateway connection")
	port := fs.Int("tb-port", 1883, "ThingsBoard MQTT port of the generated gateway connection")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tbflow import tb-gateway [-o flow.json] [-tb-host H] [-tb-port P] modbus.json")
		fmt.Fprintln(stderr, "Converts an IoT Gateway Modbus connector config into a flow; what did not map is listed on standard error.")
		fs.PrintDefaults()
	}
	// Flags may come before or after the file.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fs.Usage()
		return 2
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		fmt.Fprintln(stderr, "tbflow import tb-gateway:", err)
		return 1
	}
	res, err := tbgateway.Convert(data, tbgateway.Options{TBHost: *host, TBPort: *port})
	if err != nil {
		fmt.Fprintln(stderr, "tbflow import tb-gateway:", err)
		return 1
	}
	flow, err := res.JSON()
	if err != nil {
		fmt.Fprintln(stderr, "tbflow import tb-gateway:", err)
		return 1
	}
	flow = append(flow, '\n')
	if *out == "" {
		_, _ = stdout.Write(flow)
	} else if err := os.WriteFile(*out, flow, 0o644); err != nil {
		fmt.Fprintln(stderr, "tbflow import tb-gateway:", err)
		return 1
	}
	if len(res.Report) == 0 {
		fmt.Fprintln(stderr, "everything mapped")
		return 0
	}
	fmt.Fprintf(stderr, "%d things did not map (or map with a difference):\n", len(res.Report))
	for _, line := range res.Report {
		fmt.Fprintln(stderr, "  -", line)
	}
	return 0
}
