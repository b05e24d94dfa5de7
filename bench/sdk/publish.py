"""The Python SDK's side of the flow benchmark (bench/flow_bench_test.go).

ThingsBoard's Python SDK (tb-mqtt-client) publishes the workload's records,
one send_telemetry each, pipelined: every call first, then get() on each
result. The SDK is not installed by scripts/peers.sh (it comes from PyPI,
which the build machines do not reach): the benchmark runs this script only
when TBFLOW_BENCH_SDK_PATH names a PYTHONPATH where tb_device_mqtt imports.

Arguments: host port N. Prints "ready" once connected, waits for "go" on
stdin, then sends.
"""
import sys
import time

from tb_device_mqtt import TBDeviceMqttClient


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = TBDeviceMqttClient(host, port=port, username="bench-sdk")
    client.connect()
    while not client.is_connected():
        time.sleep(0.05)
    # The SDK asks for the session limits first; a broker that is not
    # ThingsBoard never answers, and the SDK goes on with its defaults
    # when its request times out.
    deadline = time.monotonic() + 30
    while not getattr(client, "rate_limits_received", True) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            break
    results = [client.send_telemetry({"temperature": 21.5, "humidity": 40, "seq": i}) for i in range(n)]
    for r in results:
        r.get()
    print("sent", flush=True)
    sys.stdin.read()  # until the benchmark ends the process


if __name__ == "__main__":
    main()
