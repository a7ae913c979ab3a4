from vlcli.cli.entry import main

main()
