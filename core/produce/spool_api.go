package produce

import (
	"context"

	"github.com/mqgate/mqgate/sdk"
)

// SendFunc delivers records to a cluster's backend, as the sync path does
// (auto-batched, with retries inside ctx). It returns one result per record.
type SendFunc func(ctx context.Context, cluster string, records []sdk.Record) ([]sdk.ProduceResult, error)
