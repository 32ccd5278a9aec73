package pluginhost

// State is where a plugin process is in its life.
type State string

// The states a plugin goes through.
const (
	StateStarting   State = "starting"
	StateUp         State = "up"
	StateRestarting State = "restarting"
	StateStopped    State = "stopped"
)

// Status is what GET /v1/plugins and /readyz report about one plugin.
type Status struct {
	// Name is the instance: the cluster or sink the process serves.
	Name string `json:"name"`
	// Plugin is the plugin's key under plugins: in plugins.yaml.
	Plugin string `json:"plugin"`
	Kind   string `json:"kind"` // "backend" or "sink"
	State  State  `json:"state"`
	PID    int    `json:"pid"`
	// InProcess is true for a bundled plugin that runs inside the
	// gateway's process (in_process: true); PID is then the gateway's,
	// whatever the state.
	InProcess bool `json:"in_process,omitempty"`
	Restarts  int  `json:"restarts"`
	// LastError is why the plugin last failed, empty when it has not.
	LastError string `json:"last_error,omitempty"`
	// BrokerError is why a plugin that is up cannot reach its brokers
	// (or its sink's store), as it said when last asked; empty when it
	// can, or when it was not asked (Statuses does not ask; Health does).
	BrokerError string `json:"broker_error,omitempty"`
}
