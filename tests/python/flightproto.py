"""Just enough protobuf encoding for the Flight messages pyarrow has no class for."""


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited field (string, bytes or message)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def flight_sql_command(query):
    """A CommandStatementQuery wrapped in google.protobuf.Any."""
    command = field(1, query.encode())
    return field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + field(2, command)


def cancel_flight_info_request(info):
    """CancelFlightInfoRequest{info} for a pyarrow FlightInfo."""
    return field(1, info.serialize())


def set_session_options_request(options):
    """SetSessionOptionsRequest with string values ({name: value})."""
    body = b""
    for name, value in options.items():
        entry = field(1, name.encode()) + field(2, field(1, value.encode()))
        body += field(1, entry)
    return body


def read_fields(data):
    """Top-level fields of a message as (number, wire type, value) triples."""
    i, out = 0, []
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire} not handled")
        out.append((number, wire, value))
    return out


def _read_varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def any_message(type_name, body):
    """`body` wrapped in google.protobuf.Any as the Flight SQL message `type_name`."""
    return field(1, f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()) + field(2, body)


def create_prepared_statement_request(query):
    """The body of a CreatePreparedStatement action."""
    return any_message("ActionCreatePreparedStatementRequest", field(1, query.encode()))


def prepared_statement_command(handle):
    """A CommandPreparedStatementQuery for `handle`, for GetFlightInfo."""
    return any_message("CommandPreparedStatementQuery", field(1, handle))


def statement_ticket(handle):
    """A TicketStatementQuery with `handle`, as DoGet ticket bytes."""
    return any_message("TicketStatementQuery", field(1, handle))
