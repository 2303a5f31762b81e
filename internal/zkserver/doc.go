// Package zkserver runs real Apache ZooKeeper servers, standalone or as an
// ensemble, for tests, benchmarks and demos. It drives the Debian
// "zookeeper" package (the JVM and /usr/share/java/zookeeper.jar); see
// Installed.
//
// Servers listen on free loopback ports, keep their data, zoo.cfg and log
// in a directory of their own and are ready when Start returns: the
// readiness check is the srvr four-letter word reporting a serving mode,
// since ruok answers before the server serves.
//
// A JVM never outlives the process that started it, however that process
// ends, and is only ever signalled through its own process handle, never
// by name. Stop shuts a server down and removes its directory; Kill and
// Restart simulate crashes and recoveries with the data kept.
//
// Package zktest wraps this package for tests.
package zkserver
