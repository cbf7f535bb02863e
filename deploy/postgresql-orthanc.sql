-- Run once by the postgres image, on its first start (an empty volume):
-- the database of Orthanc's index, beside GNU Health's (POSTGRES_DB).
CREATE DATABASE orthanc OWNER gnuhealth;
