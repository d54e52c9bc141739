"""A real Python peer for mp::Object and pickle (tests/test_object.cpp).

usage: object_peer.py pickles EXPR...       for each EXPR and protocol 2 to 5:
           INDEX PROTOCOL <hex of pickle.dumps> <1 if it names a global> <hex of repr>
       object_peer.py loads HEX EXPR ...    for each pair: EQUAL or DIFFERENT, then
           <hex of repr(pickle.loads(HEX))>
       object_peer.py fd N                  echo over the Connection on descriptor N
       object_peer.py listen PORT AUTHKEY   echo over a Listener on 127.0.0.1:PORT (0: any;
                                            prints LISTENING <port>)
       object_peer.py connect PORT AUTHKEY  echo over a Client
Echo: every object received comes back as (object, repr(object)[:200]) until
the string 'quit' (the repr of bytes longer than 1000 is left empty).
"""
import pickle
import pickletools
import sys
from multiprocessing.connection import Client, Connection, Listener


def names_global(data):
    return any(op.name in ("GLOBAL", "STACK_GLOBAL", "REDUCE") for op, _, _ in pickletools.genops(data))


def echo(conn):
    while True:
        obj = conn.recv()
        if obj == "quit":
            break
        # repr of 100 MiB of bytes would cost seconds: large bytes get an empty repr
        large = isinstance(obj, bytes) and len(obj) > 1000
        conn.send((obj, "" if large else repr(obj)[:200]))
    conn.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "pickles":
        for index, expr in enumerate(args):
            value = eval(expr)
            for protocol in range(2, 6):
                data = pickle.dumps(value, protocol)
                print(index, protocol, data.hex(), int(names_global(data)), repr(value).encode().hex())
    elif mode == "loads":
        for hexdata, expr in zip(args[::2], args[1::2]):
            value = pickle.loads(bytes.fromhex(hexdata))
            expected = eval(expr)
            same = value == expected and type(value) is type(expected)
            print("EQUAL" if same else "DIFFERENT", repr(value).encode().hex())
    elif mode == "fd":
        echo(Connection(int(args[0])))
    elif mode == "listen":
        with Listener(("127.0.0.1", int(args[0])), authkey=args[1].encode()) as listener:
            print("LISTENING", listener.address[1], flush=True)
            with listener.accept() as conn:
                echo(conn)
    elif mode == "connect":
        echo(Client(("127.0.0.1", int(args[0])), authkey=args[1].encode()))
    sys.stdout.flush()


main()
