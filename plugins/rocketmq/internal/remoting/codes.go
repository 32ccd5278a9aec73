package remoting

// Request codes (RocketMQ's RequestCode).
const (
	SendMessage                 int16 = 10
	PullMessage                 int16 = 11
	QueryConsumerOffset         int16 = 14
	UpdateConsumerOffset        int16 = 15
	UpdateAndCreateTopic        int16 = 17
	SearchOffsetByTimestamp     int16 = 29
	GetMaxOffset                int16 = 30
	GetMinOffset                int16 = 31
	HeartBeat                   int16 = 34
	UnregisterClient            int16 = 35
	ConsumerSendMsgBack         int16 = 36
	EndTransaction              int16 = 37
	GetConsumerListByGroup      int16 = 38
	NotifyConsumerIDsChanged    int16 = 40
	LockBatchMQ                 int16 = 41
	UnlockBatchMQ               int16 = 42
	GetRouteInfoByTopic         int16 = 105
	GetBrokerClusterInfo        int16 = 106
	GetAllTopicListFromNamesrv  int16 = 206
	GetConsumerRunningInfo      int16 = 307
	SendMessageV2               int16 = 310
	SendBatchMessage            int16 = 320
	DeleteTopicInBroker         int16 = 215
	DeleteTopicInNamesrv        int16 = 216
	GetAllSubscriptionGroupConf int16 = 201
)

// Response codes (RocketMQ's ResponseCode).
const (
	Success                 int16 = 0
	SystemError             int16 = 1
	SystemBusy              int16 = 2
	RequestCodeNotSupported int16 = 3
	MessageIllegal          int16 = 13
	ServiceNotAvailable     int16 = 14
	NoPermission            int16 = 16
	TopicNotExist           int16 = 17
	PullNotFound            int16 = 19
	PullRetryImmediately    int16 = 20
	PullOffsetMoved         int16 = 21
	QueryNotFound           int16 = 22
	SubscriptionNotExist    int16 = 24
	ConsumerNotOnline       int16 = 206
)
