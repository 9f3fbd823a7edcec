"""The application: one night's steps (``steps``), a county's night without a scheduler
(``night``), the command line (``cli``) and the Airflow glue (``orchestration``). Every
other package is below it; nothing imports it but the DAG files and the tests."""
