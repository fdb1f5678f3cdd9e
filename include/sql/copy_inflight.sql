COPY _inflight FROM STDIN (FORMAT csv)
