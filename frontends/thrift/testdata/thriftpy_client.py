"""Calls mqgate's ProducerService with thriftpy, as a Python DDMQ client would.

Usage: python3 thriftpy_client.py PRODUCER_THRIFT HOST PORT

Loads the IDL at run time (no generated code), connects over framed
transport and compact protocol, makes the calls below and prints their
results as one JSON object on stdout. The Go test (python_test.go) checks
the results and what reached the producer.
"""

import json
import sys

import array

import thriftpy
import thriftpy.protocol.compact
from thriftpy.protocol import TCompactProtocolFactory
from thriftpy.rpc import make_client
from thriftpy.transport import TFramedTransportFactory


def _write_varint(trans, n):
    out = bytearray()
    while n & ~0x7f:
        out.append((n & 0xff) | 0x80)
        n >>= 7
    out.append(n)
    trans.write(bytes(out))


# thriftpy 0.3.9's compact protocol calls array.tostring(), which Python 3.9
# removed; replace the one function that does.
if not hasattr(array.array, "tostring"):
    thriftpy.protocol.compact.write_varint = _write_varint


def result(r):
    return {"code": r.code, "msg": r.msg, "key": r.key}


def main():
    idl, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer_thrift = thriftpy.load(idl, module_name="producer_thrift")
    Message = producer_thrift.Message
    client = make_client(
        producer_thrift.ProducerService, host, port,
        proto_factory=TCompactProtocolFactory(),
        trans_factory=TFramedTransportFactory(),
        timeout=10000)
    out = {}
    try:
        out["sendSync"] = result(client.sendSync(Message(
            topic="py-orders", key="py-key", body=bytes(range(256)),
            tags="py-tag", hashId=42,
            properties={"b": "2", "a": "1"}), 5000))
        out["sendBatchSync"] = result(client.sendBatchSync([
            Message(topic="py-orders", key="k0", value="v0"),
            Message(topic="py-other", key="k1", body=b"\x00\xff", partitionId=3),
            Message(topic="py-orders", key="k2", value="v2", partitionId=-2),
        ]))
        out["sendSyncEmptyTopic"] = result(client.sendSync(Message(topic="", value="x"), 5000))
        out["sendAsync"] = result(client.sendAsync(Message(topic="py-orders", key="a1", value="later")))
        d = client.sendDelaySync(producer_thrift.DelayMessage(
            topic="py-orders", uniqDelayMsgId="py-delay", body=b"x", action=1), 1000)
        out["sendDelaySync"] = {"code": d.code, "msg": d.msg, "uniqDelayMsgId": d.uniqDelayMsgId}
    finally:
        client.close()
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
