package sdk

// SetMaxBatchMessageBytes lowers the batch split size for a test and returns
// the function that restores it.
func SetMaxBatchMessageBytes(n int) (restore func()) {
	old := maxBatchMessageBytes
	maxBatchMessageBytes = n
	return func() { maxBatchMessageBytes = old }
}
