package kafka

// The embedded broker (kfake) keeps two files open for every partition it
// has written to: the active segment and its index (kfake's
// persist.go, openSegmentFiles), until the segment rolls, retention empties
// the partition, the topic is deleted or the broker closes. Sealed segments
// it has read from keep a third, cached read handle each. Nothing in
// kfake's options closes idle ones, so the number of topics is what bounds
// the descriptors; max_topics bounds it.
const (
	// fdsPerPartition is what one written partition holds open.
	fdsPerPartition = 2
	// maxDefaultMaxTopics caps the default of max_topics however high the
	// descriptor limit is: the embedded broker answers every request on
	// one goroutine, and a metadata request lists every topic.
	maxDefaultMaxTopics = 10_000
	// fdReserveMax is the most descriptors the default of max_topics keeps
	// back from topics, for connections (each Kafka client of the plugin
	// holds up to three to the broker, and the broker the other ends, in
	// the same process), the gRPC link to the gateway and state files.
	fdReserveMax = 1024
)

// defaultMaxTopics is the default of max_topics for a process that may
// hold soft descriptors and topics of partitions partitions each: what is
// left after a reserve (half the limit, at most fdReserveMax), at two
// descriptors per partition, at least 1 and at most maxDefaultMaxTopics.
func defaultMaxTopics(soft uint64, partitions int32) int {
	reserve := min(soft/2, fdReserveMax)
	perTopic := uint64(fdsPerPartition) * uint64(max(partitions, 1))
	n := (soft - reserve) / perTopic
	return int(max(min(n, maxDefaultMaxTopics), 1))
}
