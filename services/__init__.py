"""Local services for development, tests and the demo: a real Apache Kafka broker (KRaft,
official jars from Maven Central, run on the machine's Java) and a real redis-server."""
