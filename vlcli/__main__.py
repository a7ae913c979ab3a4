from vlcli.cli.app import main

main()
