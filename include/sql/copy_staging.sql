COPY {staging} ({columns}) FROM STDIN (FORMAT csv)
