"""Python peer for tests/test_connection.cpp: speaks multiprocessing.connection
on the descriptor given as argv[1]. It first sends the messages the C++ side
expects, then echoes every message back with b"py:" in front until b"quit"."""
import sys
from multiprocessing.connection import Connection

conn = Connection(int(sys.argv[1]))
conn.send_bytes(b"")
conn.send_bytes(b"hello from python")
conn.send_bytes(bytes(range(256)) * 1024)  # 256 KiB: more than a socket buffer holds
while True:
    message = conn.recv_bytes()
    if message == b"quit":
        break
    conn.send_bytes(b"py:" + message)
conn.close()
