package api

// The topic explorer's answers reuse topics.Node for nodes; these are the
// requests and the answers of its actions.

// PublishInput is POST /api/topics/publish's body.
type PublishInput struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	QoS     byte   `json:"qos"`
	Retain  bool   `json:"retain"`
}

// Cleared is DELETE /api/topics/retained's answer: the topics whose
// retained message was cleared.
type Cleared struct {
	Cleared []string `json:"cleared"`
}
