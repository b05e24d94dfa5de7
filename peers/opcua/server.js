// An OPC UA server built on node-opcua, for the OPC UA connector's tests
// and benchmarks. It serves, in the namespace "urn:tbflow:test":
//
//   ns=2;s=<Type>        one writable scalar of every built-in type below
//   ns=2;s=<Type>Array   a writable array of the numeric, boolean and string types
//   ns=2;s=Counter       an Int32 that increases by one every --tick milliseconds
//   ns=2;s=Fast<i>       --fast Doubles (i = 0…n-1) that change every --fast-tick ms
//
// Usage: node server.js --port N --pki DIR [--user NAME --password PW]
//        [--tick MS] [--fast N --fast-tick MS]
// It prints "ready <endpoint>" on stdout once it listens, and stops on
// SIGTERM or SIGINT. Anonymous logins are allowed, and a user/password when
// given; client certificates are accepted without prior trust.
"use strict";

const path = require("path");
const {
  OPCUAServer, OPCUACertificateManager, Variant, DataType, VariantArrayType,
  MessageSecurityMode, SecurityPolicy, StatusCodes,
} = require("node-opcua");

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const port = parseInt(arg("port", "4840"), 10);
const pki = arg("pki", path.join(__dirname, "pki"));
const user = arg("user", "");
const password = arg("password", "");
const tick = parseInt(arg("tick", "100"), 10);
const fast = parseInt(arg("fast", "0"), 10);
const fastTick = parseInt(arg("fast-tick", "10"), 10);

const scalars = {
  Boolean: [DataType.Boolean, true],
  SByte: [DataType.SByte, -8],
  Byte: [DataType.Byte, 200],
  Int16: [DataType.Int16, -1234],
  UInt16: [DataType.UInt16, 54321],
  Int32: [DataType.Int32, -123456],
  UInt32: [DataType.UInt32, 3000000000],
  Int64: [DataType.Int64, [0xffffffff, 0xfffffffe]], // -2 as [high, low]
  UInt64: [DataType.UInt64, [0, 1234567890]],
  Float: [DataType.Float, 1.5],
  Double: [DataType.Double, 3.14159],
  String: [DataType.String, "hello"],
  DateTime: [DataType.DateTime, new Date(Date.UTC(2024, 0, 2, 3, 4, 5))],
  ByteString: [DataType.ByteString, Buffer.from("tbflow")],
  Guid: [DataType.Guid, "72962B91-FA75-4AE6-8D28-B404DC7DAF63"],
  LocalizedText: [DataType.LocalizedText, { text: "on", locale: "en" }],
};
const arrays = {
  BooleanArray: [DataType.Boolean, [true, false, true]],
  Int32Array: [DataType.Int32, [1, -2, 3]],
  DoubleArray: [DataType.Double, [1.5, 2.5, -3.25]],
  StringArray: [DataType.String, ["a", "b"]],
};

async function main() {
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const userCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(pki, "user"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    serverCertificateManager,
    userCertificateManager,
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
    userManager: {
      isValidUser: (u, p) => user !== "" && u === user && p === password,
    },
    buildInfo: { productName: "tbflow test server" },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.registerNamespace("urn:tbflow:test");
  const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Test" });
  const scalarFolder = ns.addFolder(folder, { browseName: "Scalars" });
  const arrayFolder = ns.addFolder(folder, { browseName: "Arrays" });
  const dynFolder = ns.addFolder(folder, { browseName: "Dynamic" });

  const add = (parent, name, dataType, value, arrayType) => ns.addVariable({
    componentOf: parent,
    browseName: name,
    nodeId: "s=" + name,
    dataType,
    valueRank: arrayType ? 1 : -1,
    accessLevel: "CurrentRead | CurrentWrite",
    userAccessLevel: "CurrentRead | CurrentWrite",
    value: new Variant({ dataType, arrayType: arrayType ? VariantArrayType.Array : VariantArrayType.Scalar, value }),
  });
  for (const [name, [dt, v]] of Object.entries(scalars)) add(scalarFolder, name, dt, v, false);
  for (const [name, [dt, v]] of Object.entries(arrays)) add(arrayFolder, name, dt, v, true);

  let counter = 0;
  const counterVar = ns.addVariable({
    componentOf: dynFolder, browseName: "Counter", nodeId: "s=Counter", dataType: "Int32",
    minimumSamplingInterval: 0,
    value: new Variant({ dataType: DataType.Int32, value: 0 }),
  });
  setInterval(() => {
    counter++;
    counterVar.setValueFromSource(new Variant({ dataType: DataType.Int32, value: counter }), StatusCodes.Good);
  }, tick);

  const fastVars = [];
  for (let i = 0; i < fast; i++) {
    fastVars.push(ns.addVariable({
      componentOf: dynFolder, browseName: "Fast" + i, nodeId: "s=Fast" + i, dataType: "Double",
      minimumSamplingInterval: 0,
      value: new Variant({ dataType: DataType.Double, value: 0 }),
    }));
  }
  if (fast > 0) {
    let n = 0;
    setInterval(() => {
      n++;
      for (const v of fastVars) v.setValueFromSource(new Variant({ dataType: DataType.Double, value: n }), StatusCodes.Good);
    }, fastTick);
  }

  await server.start();
  process.stdout.write("ready " + server.getEndpointUrl() + "\n");
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
